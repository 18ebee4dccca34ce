// The credwatch-meta alerts. `$._config` (config.libsonnet) holds the selector, thresholds,
// severities, label lists and URL bases every rule uses.
{
  prometheusAlerts+:: {
    groups+: [
      {
        name: "credwatch-meta",
        rules: [
          {
            alert: "CredwatchConfigReloadFailed",
            expr: "credwatch_config_last_reload_successful{%(credwatchSelector)s} == 0" % $._config,
            'for': "5m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "credwatch rejected its new configuration" % $._config,
              description: "The last reload of credwatch's configuration on {{ $labels.instance }} failed {{ 300 | humanizeDuration }} or more ago; the previous configuration is still running. The errors are in credwatch's log and in the answer of POST /-/reload." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchconfigreloadfailed" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
          {
            alert: "CredwatchDown",
            expr: "up{%(credwatchSelector)s} == 0" % $._config,
            'for': "5m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "credwatch is down" % $._config,
              description: "Prometheus has not scraped credwatch on {{ $labels.instance }} for {{ 300 | humanizeDuration }} or more: no credential is being watched from there." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchdown" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
          {
            alert: "CredwatchNoConnections",
            expr: "sum by (job, namespace) (credwatch_connections{%(credwatchSelector)s}) == 0" % $._config,
            'for': "15m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "credwatch watches no connection" % $._config,
              description: "Every credwatch replica of job {{ $labels.job }}{{ with $labels.namespace }} in namespace {{ . }}{{ end }} has run with an empty configuration for {{ 900 | humanizeDuration }} or more: no credential is being watched there." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchnoconnections" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
          {
            alert: "CredwatchShardMissing",
            expr: |||
              count by (job, namespace) (count without (%(replicaLabelList)s) (credwatch_shard_info{%(credwatchSelector)s}))
              < max by (job, namespace) (credwatch_shards{%(credwatchSelector)s})
            ||| % $._config,
            'for': "10m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "A shard of credwatch is missing" % $._config,
              description: "Only {{ $value }} of the shards of job {{ $labels.job }}{{ with $labels.namespace }} in namespace {{ . }}{{ end }} report, for {{ 600 | humanizeDuration }} or more: the connections of the missing shards are not watched. Was the StatefulSet scaled without the shard count?" % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchshardmissing" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
          {
            alert: "CredwatchReplicaMissing",
            expr: |||
              count by (job, namespace, shard) (count without (%(replicaLabelList)s) (credwatch_replica_info{%(credwatchSelector)s}))
              < on (job, namespace) group_left
              max by (job, namespace) (credwatch_replicas{%(credwatchSelector)s})
            ||| % $._config,
            'for': "10m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "A replica of credwatch's HA group is missing" % $._config,
              description: "Only {{ $value }} of the configured replicas of shard {{ $labels.shard }} of job {{ $labels.job }}{{ with $labels.namespace }} in namespace {{ . }}{{ end }} report, for {{ 600 | humanizeDuration }} or more: the Basic login accounts the missing replica owns are not probed (their alerts resolve after keep_firing_for), while every token is still watched by the others." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchreplicamissing" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
          {
            alert: "CredwatchReplicaCountMismatch",
            expr: |||
              max by (job, namespace) (credwatch_replicas{%(credwatchSelector)s})
              != min by (job, namespace) (credwatch_replicas{%(credwatchSelector)s})
            ||| % $._config,
            'for': "10m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "credwatch's replicas disagree on the size of their HA group" % $._config,
              description: "The replicas of job {{ $labels.job }}{{ with $labels.namespace }} in namespace {{ . }}{{ end }} were started with different --replica counts (or one without --replica), for {{ 600 | humanizeDuration }} or more: two replicas may own one Basic login account and together spend 4 failed logins, past the CAPTCHA lock at 3 (Jira's and Confluence's default; Bitbucket's is 5)." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchreplicacountmismatch" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
          {
            alert: "CredwatchAllReplicasDown",
            expr: "max by (job, namespace) (up{%(credwatchSelector)s}) == 0" % $._config,
            'for': "5m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "Every replica of credwatch is down" % $._config,
              description: "Prometheus has scraped no replica of job {{ $labels.job }}{{ with $labels.namespace }} in namespace {{ . }}{{ end }} for {{ 300 | humanizeDuration }} or more: no credential of that deployment is watched, and its probe alerts are muted until one is back." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchallreplicasdown" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
          {
            alert: "CredwatchAbsent",
            expr: "absent(up{%(credwatchSelector)s})" % $._config,
            'for': "10m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "No credwatch target is known to Prometheus" % $._config,
              description: "Prometheus has had no target in job credwatch for {{ 600 | humanizeDuration }} or more: credentials are not being watched at all." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchabsent" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
        ],
      },
    ],
  },
}
