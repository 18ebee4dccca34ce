// The credwatch-probes alerts. `$._config` (config.libsonnet) holds the selector, thresholds,
// severities, label lists and URL bases every rule uses.
{
  prometheusAlerts+:: {
    groups+: [
      {
        name: "credwatch-probes",
        rules: [
          {
            alert: "CredwatchProbeFailing",
            expr: |||
              max without (%(replicaLabelList)s) (
                (
                  credwatch_probe_success{%(credwatchSelector)s} == 0
                  unless on (%(targetLabels)s, connection)
                  credwatch_credential_state{%(credwatchSelector)s, state=~"invalid|expired|locked|forbidden"} == 1
                  # A rate limit is CredwatchRateLimited's alone.
                  unless on (%(targetLabels)s, connection)
                  credwatch_probe_reason{%(credwatchSelector)s, reason="rate_limited"}
                )
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            'for': "15m",
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "credwatch cannot reach a verdict on a credential" % $._config,
              description: "Probes of {{ $labels.connection }} at {{ $labels.url }} have reached no verdict for {{ 900 | humanizeDuration }} or more (network, TLS, server errors or a login page in front of %(product)s); the last success was {{ with printf \"time() - max without (%(replicaLabelList)s) (credwatch_last_success_timestamp_seconds{connection=%%q})\" $labels.connection | query }}{{ . | first | value | humanizeDuration }} ago{{ else }}never{{ end }}." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchprobefailing" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
          {
            alert: "CredwatchProbeFailingSustained",
            expr: |||
              max without (%(replicaLabelList)s) (
                (
                  credwatch_probe_success{%(credwatchSelector)s} == 0
                  unless on (%(targetLabels)s, connection)
                  credwatch_credential_state{%(credwatchSelector)s, state=~"invalid|expired|locked|forbidden"} == 1
                  # A rate limit is CredwatchRateLimited's alone.
                  unless on (%(targetLabels)s, connection)
                  credwatch_probe_reason{%(credwatchSelector)s, reason="rate_limited"}
                )
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            'for': "2h",
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "credwatch has had no verdict on a credential for hours" % $._config,
              description: "Probes of {{ $labels.connection }} at {{ $labels.url }} have reached no verdict for {{ 7200 | humanizeDuration }} or more: whether its credential works is unknown, and so is whether the integration does." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchprobefailingsustained" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
          {
            alert: "CredwatchProbesStale",
            expr: |||
              max without (%(replicaLabelList)s) (
                (time() - credwatch_next_probe_timestamp_seconds{%(credwatchSelector)s} > 2 * credwatch_probe_interval_seconds{%(credwatchSelector)s})
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            'for': "5m",
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "A credential has not been probed on schedule" % $._config,
              description: "The probe of {{ $labels.connection }} was due {{ $value | humanizeDuration }} ago, more than two intervals: no probe for three intervals. credwatch may be overloaded (concurrency bounds) or stuck." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchprobesstale" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
          {
            alert: "CredwatchRateLimited",
            expr: |||
              max without (%(replicaLabelList)s) (
                (increase(credwatch_rate_limited_total{%(credwatchSelector)s}[1h]) >= 3)
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            'for': "30m",
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "%(product)s keeps rate limiting a watched credential" % $._config,
              description: "%(product)s answered {{ $value | humanize }} probes of {{ $labels.connection }} ({{ $labels.account }} at {{ $labels.url }}) with a rate limit in the last hour, for {{ 1800 | humanizeDuration }} or more: the account or site budget is exhausted, likely by other traffic." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchratelimited" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
        ],
      },
    ],
  },
}
