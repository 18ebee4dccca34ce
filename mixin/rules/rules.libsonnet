// Recording rules the dashboard reads: the fleet by state, and each token's days left, with
// the replicas of one deployment merged.
{
  prometheusRules+:: {
    groups+: [
      {
        name: 'credwatch-recording',
        rules: [
          {
            record: 'credwatch:connections:by_state',
            expr: 'count by (%(deployment)s, state) (max without (%(replicas)s) (credwatch_credential_state{%(selector)s} == 1))' % {
              deployment: std.join(', ', $._config.deploymentLabels),
              replicas: $._config.replicaLabelList,
              selector: $._config.credwatchSelector,
            },
          },
          {
            record: 'credwatch:token_expiry:days_left',
            expr: 'max without (%(replicas)s) ((credwatch_token_expiry_timestamp_seconds{%(selector)s} - time()) / 86400)' % {
              replicas: $._config.replicaLabelList,
              selector: $._config.credwatchSelector,
            },
          },
        ],
      },
    ],
  },
}
