// The mixin's configuration: everything a user of the credwatch mixin sets, as the
// monitoring-mixins do (kubernetes-mixin, node-mixin, cert-manager-mixin). Override in your own
// jsonnet:
//
//   (import 'credwatch-mixin/mixin.libsonnet') + {
//     _config+:: { credwatchSelector: 'job="jira-credentials"', expiryWarningDays: 30 },
//   }
{
  _config+:: {
    // The selector of credwatch's series in every rule and panel.
    credwatchSelector: 'job="credwatch"',
    // A token expiring within this many days warns; within expiryCriticalDays it pages.
    expiryWarningDays: 14,
    expiryCriticalDays: 3,
    // The severity label values.
    severities: { critical: 'critical', warning: 'warning', info: 'info' },
    // The labels that name one replica of a deployment (Prometheus's instance, the Prometheus
    // Operator's pod, container, endpoint, service): dropped, so that two replicas, or a pod
    // scraped through two Services, raise one alert per cause and count once on the
    // dashboard.
    replicaLabels: ['instance', 'pod', 'container', 'endpoint', 'service'],
    // The labels that keep two deployments apart: they survive.
    deploymentLabels: ['job', 'namespace'],
    // What each per-connection alert takes from credwatch_connection_info for routing and its
    // annotations: its fixed labels and the static labels routed on (add yours).
    routingLabels: ['url', 'atlassian_product', 'kind', 'auth', 'account', 'team'],
    // Labels added to every alert (for example { team: 'sre' }).
    alertExtraLabels: {},
    // Where the runbook and the dashboard live, for the alerts' runbook_url and dashboard_url.
    runbookURLBase: 'https://github.com/credwatch/credwatch/blob/main/deploy/RUNBOOK.md',
    dashboardURLBase: 'https://grafana.example.com/d/credwatch/credwatch',
    // The status page, linked from the dashboard ('' for none).
    statusPageURL: '',
    // Every alert's `for` and `keep_firing_for` multiplied by this (in whole seconds, at least
    // 1 s), so that their order stays: for end-to-end tests that cannot wait 15 minutes
    // (0.01 makes 5m 3s and 15m 9s); not for production.
    alertDurationScale: 1,
    // The dashboard's uid and refresh.
    dashboardUID: 'credwatch',
    dashboardRefresh: '30s',

    // Derived: the lists as PromQL writes them.
    replicaLabelList:: std.join(', ', self.replicaLabels),
    targetLabels:: std.join(', ', self.deploymentLabels + self.replicaLabels),
    infoLabels:: std.join(', ', self.routingLabels),
    // The product's name in an alert's annotations ("Jira", "Confluence"), from the
    // atlassian_product label (Jira for a credwatch that does not send it yet).
    product:: '{{ if $labels.atlassian_product }}{{ $labels.atlassian_product | title }}{{ else }}Jira{{ end }}',
  },
}
