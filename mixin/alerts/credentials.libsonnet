// The credwatch-credentials alerts. `$._config` (config.libsonnet) holds the selector, thresholds,
// severities, label lists and URL bases every rule uses.
{
  prometheusAlerts+:: {
    groups+: [
      {
        name: "credwatch-credentials",
        rules: [
          {
            alert: "CredwatchCredentialRejected",
            expr: |||
              max without (%(replicaLabelList)s) (
                (credwatch_credential_state{%(credwatchSelector)s, state=~"invalid|expired"} == 1)
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "%(product)s rejects a watched credential" % $._config,
              description: "%(product)s rejected the {{ $labels.auth }} credential of {{ $labels.connection }} ({{ $labels.account }} at {{ $labels.url }}): it is {{ $labels.state }}, and the integration that uses it is failing. Confirm with: credwatch check --connection {{ $labels.connection }}" % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchcredentialrejected" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
          {
            alert: "CredwatchCredentialLocked",
            expr: |||
              max without (%(replicaLabelList)s) (
                (credwatch_credential_state{%(credwatchSelector)s, state="locked"} == 1)
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "A %(product)s account is locked behind a CAPTCHA" % $._config,
              description: "%(product)s refuses every login of {{ $labels.account }} at {{ $labels.url }} until a person solves the CAPTCHA or an admin resets the failed-login count; credwatch stopped probing {{ $labels.connection }} so as not to make it worse." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchcredentiallocked" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
          {
            alert: "CredwatchCredentialForbidden",
            expr: |||
              max without (%(replicaLabelList)s) (
                (credwatch_credential_state{%(credwatchSelector)s, state="forbidden"} == 1)
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            'for': "10m",
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "A watched credential may not use the %(product)s API" % $._config,
              description: "%(product)s answered 403 for {{ $labels.connection }} ({{ $labels.account }} at {{ $labels.url }}) for {{ 600 | humanizeDuration }} or more: the account lacks permission, or Basic authentication is disabled on that %(product)s." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchcredentialforbidden" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
        ],
      },
    ],
  },
}
