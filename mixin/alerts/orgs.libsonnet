// The credwatch-orgs alerts. `$._config` (config.libsonnet) holds the selector, thresholds,
// severities, label lists and URL bases every rule uses.
{
  prometheusAlerts+:: {
    groups+: [
      {
        name: "credwatch-orgs",
        rules: [
          {
            alert: "CredwatchOrgApiKeyRejected",
            expr: |||
              max without (%(replicaLabelList)s) (
                credwatch_org_api_key_state{%(credwatchSelector)s, state=~"invalid|expired|forbidden"} == 1
              )
            ||| % $._config,
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.critical } + $._config.alertExtraLabels,
            annotations: {
              summary: "The organization admin API rejects credwatch's API key" % $._config,
              description: "Atlassian's organization admin API answered {{ if eq $labels.state \"forbidden\" }}403: the key lacks the scope read:tokens:admin{{ else }}401: the key is wrong, revoked or expired{{ end }}. credwatch cannot see the expiry and the blocks of the organization's API tokens; what it last read stands." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchorgapikeyrejected" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
          {
            alert: "CredwatchOrgApiKeyExpiring",
            expr: |||
              max without (%(replicaLabelList)s) (
                credwatch_org_api_key_expiry_timestamp_seconds{%(credwatchSelector)s} - time() < %(expiryWarningDays)d * 86400
              )
            ||| % $._config,
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "The organization admin API key expires soon" % $._config,
              description: "The admin API key that credwatch reads {{ $labels.org }}'s token list with {{ if ge $value 0.0 }}expires in {{ $value | humanizeDuration }}{{ else }}has expired{{ end }} (api_key_expires_at). Create a new key at admin.atlassian.com > Settings > API keys and update api_key_file." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchorgapikeyexpiring" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
          {
            alert: "CredwatchOrgTokenListStale",
            expr: |||
              max without (%(replicaLabelList)s) (
                time() - credwatch_org_last_list_success_timestamp_seconds{%(credwatchSelector)s} > 86400
              )
            ||| % $._config,
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "An organization's API token list has not been read for a day" % $._config,
              description: "credwatch last read {{ $labels.org }}'s API token list {{ $value | humanizeDuration }} ago: expiries and blocks since then are not known. The reason is in credwatch's log and in GET /api/v1/orgs (last_error)." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchorgtokenliststale" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
          {
            alert: "CredwatchOrgTokensExpiringSoon",
            expr: |||
              max without (%(replicaLabelList)s) (
                credwatch_org_tokens_expiring{%(credwatchSelector)s, within="7d"} > 0
              )
            ||| % $._config,
            keep_firing_for: "10m",
            labels: { severity: $._config.severities.warning } + $._config.alertExtraLabels,
            annotations: {
              summary: "API tokens of an organization expire within 7 days" % $._config,
              description: "{{ $value }} allowed API tokens of organization {{ $labels.org }} expire within 7 days, whether or not credwatch watches the integrations that use them. The organization admin lists them at admin.atlassian.com > Security > API tokens; their owners should rotate them." % $._config,
              runbook_url: "%(runbookURLBase)s#credwatchorgtokensexpiringsoon" % $._config,
              dashboard_url: "%(dashboardURLBase)s" % $._config,
            },
          },
        ],
      },
    ],
  },
}
