// The credwatch-expiry alerts. `$._config` (config.libsonnet) holds the selector, thresholds,
// severities, label lists and URL bases every rule uses.
{
  prometheusAlerts+:: {
    groups+: [
      {
        name: "credwatch-expiry",
        rules: [
          {
            alert: "CredwatchTokenExpiringSoon",
            expr: |||
              max without (%(replicaLabelList)s) (
                (
                  credwatch_token_expiry_timestamp_seconds{%(credwatchSelector)s} - time() < %(expiryWarningDays)d * 86400
                  and credwatch_token_expiry_timestamp_seconds{%(credwatchSelector)s} - time() >= %(expiryCriticalDays)d * 86400
                  unless on (%(targetLabels)s, connection)
                  credwatch_credential_state{%(credwatchSelector)s, state=~"invalid|expired"} == 1
                )
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "A %(product)s token expires soon" % $._config,
              description: "The {{ $labels.auth }} token of {{ $labels.connection }} ({{ $labels.account }} at {{ $labels.url }}) expires in {{ $value | humanizeDuration }} (known from {{ $labels.source }}). Rotate it before then." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchtokenexpiringsoon" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
          {
            alert: "CredwatchTokenExpiryImminent",
            expr: |||
              max without (%(replicaLabelList)s) (
                (
                  credwatch_token_expiry_timestamp_seconds{%(credwatchSelector)s} - time() < %(expiryCriticalDays)d * 86400
                  unless on (%(targetLabels)s, connection)
                  credwatch_credential_state{%(credwatchSelector)s, state=~"invalid|expired"} == 1
                )
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "A %(product)s token expires within days, or has expired" % $._config,
              description: "The {{ $labels.auth }} token of {{ $labels.connection }} ({{ $labels.account }} at {{ $labels.url }}) {{ if ge $value 0.0 }}expires in {{ $value | humanizeDuration }}{{ else }}expired {{ with printf \"time() - max without (%(replicaLabelList)s) (credwatch_token_expiry_timestamp_seconds{connection=%%q})\" $labels.connection | query }}{{ . | first | value | humanizeDuration }}{{ end }} ago{{ end }} (known from {{ $labels.source }}). Rotate it now." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchtokenexpiryimminent" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
          {
            alert: "CredwatchTokenRotationDue",
            expr: |||
              max without (%(replicaLabelList)s) (
                (
                  credwatch_token_rotation_due{%(credwatchSelector)s} == 1
                  # The expiry alerts already page for a token that expires within 14 days.
                  unless on (%(targetLabels)s, connection)
                  credwatch_token_expiry_timestamp_seconds{%(credwatchSelector)s} - time() < %(expiryWarningDays)d * 86400
                  unless on (%(targetLabels)s, connection)
                  credwatch_credential_state{%(credwatchSelector)s, state=~"invalid|expired"} == 1
                )
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "A %(product)s token is due for rotation" % $._config,
              description: "By its connection's policy (rotate_before before expiry, or older than max_token_age), the token of {{ $labels.connection }} ({{ $labels.account }} at {{ $labels.url }}) is due for rotation." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchtokenrotationdue" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
          {
            alert: "CredwatchTokenNeverExpires",
            expr: |||
              max without (%(replicaLabelList)s) (
                (credwatch_token_never_expires{%(credwatchSelector)s} == 1)
                * on (%(targetLabels)s, connection) group_left (%(infoLabels)s)
                credwatch_connection_info{%(credwatchSelector)s}
              )
            ||| % $._config,
            'for': "1h",
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.info } + $._config.alertExtraLabels,
            annotations: {
              summary: "A %(product)s token never expires" % $._config,
              description: "%(product)s lists the token of {{ $labels.connection }} ({{ $labels.account }} at {{ $labels.url }}) without an expiry; create tokens with one (90 days is the usual recommendation)." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchtokenneverexpires" % $._config,
              dashboard_url: "%(dashboardURLBase)s?var-connection={{ $labels.connection }}" % $._config,
            },
          },
        ],
      },
    ],
  },
}
