// The credwatch monitoring mixin: prometheusAlerts, prometheusRules and grafanaDashboards,
// all from one configuration (config.libsonnet). Needs no library outside this directory.
(import 'config.libsonnet')
+ (import 'alerts/alerts.libsonnet')
+ (import 'rules/rules.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
+ {
  // `alertDurationScale` (config.libsonnet) scales the durations of every alert that has one.
  prometheusAlerts:: super.prometheusAlerts + {
    local scale = $._config.alertDurationScale,
    local units = { s: 1, m: 60, h: 3600, d: 86400 },
    local seconds(duration) =
      std.parseInt(std.substr(duration, 0, std.length(duration) - 1))
      * units[std.substr(duration, std.length(duration) - 1, 1)],
    local scaled(duration) = '%ds' % std.max(1, std.floor(seconds(duration) * scale)),
    local scale_rule(rule) =
      rule
      + (if std.objectHas(rule, 'for') then { 'for': scaled(rule['for']) } else {})
      + (if std.objectHas(rule, 'keep_firing_for') then { keep_firing_for: scaled(rule.keep_firing_for) } else {}),
    groups: [
      group + { rules: if scale == 1 then group.rules else [scale_rule(rule) for rule in group.rules] }
      for group in super.groups
    ],
  },
}
