// The credwatch monitoring mixin: prometheusAlerts, prometheusRules and grafanaDashboards,
// all from one configuration (config.libsonnet). Needs no library outside this directory.
(import 'config.libsonnet')
+ (import 'alerts/alerts.libsonnet')
+ (import 'rules/rules.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
