// The credwatch dashboard, from the mixin's configuration: variables for the data source, job,
// namespace, product, team and connection; the fleet by state; the expiring table sorted by days left;
// the organizations' inventory; probe latency, lateness and rate limits; credwatch's own
// health; links to the runbook and the status page; state changes as annotations. Every query
// merges the replicas of one deployment (max without the replica labels).

{
  grafanaDashboards+:: {
    local cfg = $._config,
    local ds = { type: 'prometheus', uid: '${datasource}' },
    local replicas = cfg.replicaLabelList,
    // The series of the chosen job and namespace.
    local sel = '%s, job=~"$job", namespace=~"$namespace"' % cfg.credwatchSelector,
    // ... and connection.
    local conn = sel + ', connection=~"$connection"',
    // Restricts a per-connection expression to the chosen team and product.
    local team(expr) =
      '(%s) and on (job, namespace, connection) max without (%s) (credwatch_connection_info{%s, team=~"$team", atlassian_product=~"$product"})'
      % [expr, replicas, conn],
    local dedup(expr) = 'max without (%s) (%s)' % [replicas, expr],

    local target(expr, ref='A', legend='', instant=false, format=null) = {
      datasource: ds,
      expr: expr,
      refId: ref,
      legendFormat: legend,
      instant: instant,
      range: !instant,
    } + (if format == null then {} else { format: format }),

    local stat(id, title, description, expr, x, y, color='red', unit='none', w=3) = {
      id: id,
      type: 'stat',
      title: title,
      description: description,
      datasource: ds,
      gridPos: { h: 4, w: w, x: x, y: y },
      targets: [target(expr, instant=true)],
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: 'background',
        graphMode: 'none',
        textMode: 'value',
        justifyMode: 'center',
      },
      fieldConfig: {
        defaults: {
          unit: unit,
          noValue: '0',
          thresholds: {
            mode: 'absolute',
            steps: if color == 'text' then [{ color: 'text', value: null }]
            else [{ color: 'green', value: null }, { color: color, value: 1 }],
          },
        },
        overrides: [],
      },
    },

    local timeseries(id, title, description, targets, x, y, unit='none', w=12, h=8) = {
      id: id,
      type: 'timeseries',
      title: title,
      description: description,
      datasource: ds,
      gridPos: { h: h, w: w, x: x, y: y },
      targets: targets,
      fieldConfig: { defaults: { unit: unit }, overrides: [] },
      options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
    },

    local row(id, title, y) = {
      id: id,
      type: 'row',
      title: title,
      collapsed: false,
      gridPos: { h: 1, w: 24, x: 0, y: y },
      panels: [],
    },

    local countState(states) =
      'count(%s) or vector(0)' % team(dedup('credwatch_credential_state{%s, state=~"%s"} == 1' % [conn, states])),

    local variable(name, label, query) = {
      name: name,
      label: label,
      type: 'query',
      datasource: ds,
      query: { query: query, refId: name },
      definition: query,
      refresh: 2,
      includeAll: true,
      multi: true,
      allValue: '.*',
      current: { text: 'All', value: '$__all' },
      sort: 1,
      hide: 0,
    },

    'credwatch.json': {
      uid: cfg.dashboardUID,
      title: 'credwatch',
      description: 'Health of the Jira, Confluence and Bitbucket credentials and Atlassian organizations credwatch watches, and of credwatch itself.',
      tags: ['credwatch', 'jira', 'confluence', 'bitbucket'],
      timezone: 'browser',
      editable: true,
      schemaVersion: 39,
      version: 1,
      refresh: cfg.dashboardRefresh,
      time: { from: 'now-24h', to: 'now' },
      links: [
        {
          title: 'Runbook',
          type: 'link',
          url: cfg.runbookURLBase,
          icon: 'doc',
          targetBlank: true,
        },
      ] + (if cfg.statusPageURL == '' then [] else [{
             title: 'Status page',
             type: 'link',
             url: cfg.statusPageURL,
             icon: 'dashboard',
             targetBlank: true,
           }]),
      templating: {
        list: [
          {
            name: 'datasource',
            label: 'Data source',
            type: 'datasource',
            query: 'prometheus',
            current: {},
            hide: 0,
            refresh: 1,
          },
          variable('job', 'Job', 'label_values(credwatch_build_info{%s}, job)' % cfg.credwatchSelector),
          variable('namespace', 'Namespace', 'label_values(credwatch_build_info{%s, job=~"$job"}, namespace)' % cfg.credwatchSelector),
          variable('product', 'Product', 'label_values(credwatch_connection_info{%s}, atlassian_product)' % sel),
          variable('team', 'Team', 'label_values(credwatch_connection_info{%s, atlassian_product=~"$product"}, team)' % sel),
          variable('connection', 'Connection', 'label_values(credwatch_connection_info{%s, atlassian_product=~"$product", team=~"$team"}, connection)' % sel),
        ],
      },
      annotations: {
        list: [
          {
            builtIn: 1,
            datasource: { type: 'grafana', uid: '-- Grafana --' },
            enable: true,
            hide: true,
            iconColor: 'rgba(0, 211, 255, 1)',
            name: 'Annotations & Alerts',
            type: 'dashboard',
          },
          {
            name: 'State changes',
            datasource: ds,
            enable: true,
            hide: false,
            iconColor: 'orange',
            expr: 'max without (%s) (changes(credwatch_credential_state{%s, state="valid"}[2m])) > 0' % [replicas, conn],
            step: '60s',
            titleFormat: 'State change',
            textFormat: '{{connection}} changed state',
            tagKeys: 'connection',
          },
        ],
      },
      panels: [
        row(100, 'Fleet', 0),
        stat(1, 'Valid', 'Credentials their product accepts.', countState('valid'), 0, 1, 'text'),
        stat(2, 'Rejected', 'Credentials their product rejects: invalid or expired.', countState('invalid|expired'), 3, 1),
        stat(3, 'Locked', 'Accounts behind a CAPTCHA: even the right password fails until a person acts.', countState('locked'), 6, 1, 'purple'),
        stat(4, 'Forbidden', 'Credentials that work but may not use the API (permissions, Basic authentication disabled).', countState('forbidden'), 9, 1, 'orange'),
        stat(5, 'Unknown', 'No verdict: the last probes reached no answer (network, 5xx, rate limits), or no probe yet.', countState('unknown'), 12, 1, 'yellow'),
        stat(6, 'Rotation due', 'Tokens whose rotation is due by their connection policy.', 'count(%s) or vector(0)' % team(dedup('credwatch_token_rotation_due{%s} == 1' % conn)), 15, 1, 'blue'),
        stat(7, 'Expiring within %d days' % cfg.expiryWarningDays, 'Watched tokens that expire within the warning window.', 'count(%s) or vector(0)' % team(dedup('credwatch_token_expiry_timestamp_seconds{%s}' % conn) + ' - time() < %d * 86400' % cfg.expiryWarningDays), 18, 1, 'orange'),
        stat(8, 'Organization tokens expiring in 7 days', 'Allowed API tokens of the Atlassian organizations that expire within 7 days, watched or not.', 'sum(%s) or vector(0)' % dedup('credwatch_org_tokens_expiring{%s, within="7d"}' % sel), 21, 1, 'orange'),

        {
          id: 9,
          type: 'table',
          title: 'Connections by days left',
          description: 'One row per connection: state, the last probe\'s reason, account, and the days left before the token expires (blank when unknown). Sorted by days left.',
          datasource: ds,
          gridPos: { h: 11, w: 24, x: 0, y: 5 },
          targets: [
            target(team(dedup('credwatch_credential_state{%s} == 1' % conn)), 'state', instant=true, format='table'),
            target(team(dedup('credwatch_probe_reason{%s}' % conn)), 'reason', instant=true, format='table'),
            target('max by (job, namespace, connection, account, url, atlassian_product, kind, auth, team) (credwatch_connection_info{%s, team=~"$team", atlassian_product=~"$product"})' % conn, 'info', instant=true, format='table'),
            target(team('min without (%s, source) ((credwatch_token_expiry_timestamp_seconds{%s} - time()) / 86400)' % [replicas, conn]), 'days', instant=true, format='table'),
          ],
          transformations: [
            { id: 'joinByField', options: { byField: 'connection', mode: 'outer' } },
            {
              id: 'organize',
              options: {
                excludeByName: { Time: true, 'Time 1': true, 'Time 2': true, 'Time 3': true, 'Time 4': true, 'Value #state': true, 'Value #reason': true, 'Value #info': true },
                renameByName: { 'Value #days': 'days left' },
                indexByName: { connection: 0, state: 1, reason: 2, account: 3, team: 4, atlassian_product: 5, kind: 6, auth: 7, url: 8, 'Value #days': 9 },
              },
            },
            { id: 'sortBy', options: { sort: [{ field: 'days left', desc: false }] } },
          ],
          fieldConfig: {
            defaults: {},
            overrides: [{
              matcher: { id: 'byName', options: 'days left' },
              properties: [
                { id: 'unit', value: 'none' },
                { id: 'decimals', value: 1 },
                { id: 'custom.cellOptions', value: { type: 'color-background' } },
                { id: 'thresholds', value: { mode: 'absolute', steps: [
                  { color: 'red', value: null },
                  { color: 'orange', value: cfg.expiryCriticalDays },
                  { color: 'green', value: cfg.expiryWarningDays },
                ] } },
              ],
            }],
          },
        },
        {
          id: 10,
          type: 'state-timeline',
          title: 'Credential state over time',
          description: 'The standing verdict of each credential.',
          datasource: ds,
          gridPos: { h: 9, w: 24, x: 0, y: 16 },
          targets: [target(
            std.join(' + ', [
              'max by (job, namespace, connection) (%s) * %d' % [team('credwatch_credential_state{%s, state="%s"}' % [conn, s.state]), s.value]
              for s in [
                { state: 'unknown', value: 1 },
                { state: 'invalid', value: 2 },
                { state: 'expired', value: 3 },
                { state: 'locked', value: 4 },
                { state: 'forbidden', value: 5 },
              ]
            ]),
            legend='{{connection}}',
          )],
          fieldConfig: {
            defaults: {
              mappings: [{ type: 'value', options: {
                '0': { text: 'valid', color: 'green' },
                '1': { text: 'unknown', color: 'text' },
                '2': { text: 'invalid', color: 'red' },
                '3': { text: 'expired', color: 'dark-red' },
                '4': { text: 'locked', color: 'purple' },
                '5': { text: 'forbidden', color: 'orange' },
              } }],
            },
            overrides: [],
          },
          options: { showValue: 'never', mergeValues: true },
        },

        row(101, 'Atlassian organizations', 25),
        {
          id: 11,
          type: 'table',
          title: 'Organizations\' API tokens',
          description: 'Per organization: its tokens by status, those expiring within 7 and 30 days, and those unused, from the organization admin API.',
          datasource: ds,
          gridPos: { h: 6, w: 16, x: 0, y: 26 },
          targets: [
            target(dedup('credwatch_org_tokens{%s}' % sel), 'tokens', legend='{{org}} {{status}}', instant=true, format='table'),
            target(dedup('credwatch_org_tokens_expiring{%s}' % sel), 'expiring', legend='{{org}} {{within}}', instant=true, format='table'),
            target(dedup('credwatch_org_tokens_unused{%s}' % sel), 'unused', legend='{{org}}', instant=true, format='table'),
          ],
          transformations: [{ id: 'merge', options: {} }],
        },
        stat(12, 'Admin API keys rejected', 'Organizations whose admin API key the API rejects (invalid, expired or forbidden).', 'count(%s) or vector(0)' % dedup('credwatch_org_api_key_state{%s, state=~"invalid|expired|forbidden"} == 1' % sel), 16, 26, w=4),
        stat(13, 'Lists not read for a day', 'Organizations whose token list was last read over a day ago.', 'count(time() - %s > 86400) or vector(0)' % dedup('credwatch_org_last_list_success_timestamp_seconds{%s}' % sel), 20, 26, 'orange', w=4),

        row(102, 'Probes', 32),
        timeseries(14, 'Probe latency', 'How long each connection\'s last probe took.', [target(team(dedup('credwatch_probe_duration_seconds{%s}' % conn)), legend='{{connection}}')], 0, 33, 's'),
        timeseries(15, 'Failures by reason', 'Probes that did not reach ok, by reason.', [target('sum by (reason) (%s)' % team(dedup('increase(credwatch_probe_failures_total{%s}[$__rate_interval])' % conn)), legend='{{reason}}')], 12, 33),
        timeseries(16, 'Rate-limit headroom', 'The product\'s X-RateLimit-Remaining on the last probe.', [target(team('min without (%s) (credwatch_rate_limit_remaining{%s})' % [replicas, conn]), legend='{{connection}}')], 0, 41),
        timeseries(17, 'Rate limited probes', 'Probes the product answered with a rate limit.', [target(team(dedup('increase(credwatch_rate_limited_total{%s}[$__rate_interval])' % conn)), legend='{{connection}}')], 12, 41),

        row(103, 'credwatch itself', 49),
        stat(18, 'Up', 'Replicas Prometheus scrapes.', 'sum(up{%s})' % sel, 0, 50, 'text', w=4),
        {
          id: 19,
          type: 'table',
          title: 'Versions',
          description: 'credwatch\'s version, commit and compiler per replica.',
          datasource: ds,
          gridPos: { h: 4, w: 8, x: 4, y: 50 },
          targets: [target('credwatch_build_info{%s}' % sel, instant=true, format='table')],
          transformations: [{ id: 'organize', options: { excludeByName: { Time: true, Value: true, __name__: true } } }],
        },
        stat(20, 'Shards reporting', 'Shards that report, against the shard count.', 'count(count without (%s) (credwatch_shard_info{%s}))' % [replicas, sel], 12, 50, 'text', w=4),
        stat(21, 'Config reload', '1 if the last configuration load or reload succeeded on every replica.', 'min(credwatch_config_last_reload_successful{%s})' % sel, 16, 50, 'text', w=4),
        stat(22, 'Connections', 'Connections in the running configuration, over the replicas of one shard set.', 'sum(%s)' % dedup('credwatch_connections{%s}' % sel), 20, 50, 'text', w=4),
        timeseries(23, 'Probe lateness (p99)', 'How late probes started against their schedule: late probes mean credwatch is overloaded.', [target('histogram_quantile(0.99, sum by (le, instance) (rate(credwatch_probe_lateness_seconds_bucket{%s}[$__rate_interval])))' % sel, legend='{{instance}}')], 0, 54, 's', w=8),
        timeseries(24, 'Memory', 'Resident memory per replica.', [target('process_resident_memory_bytes{%s}' % sel, legend='{{instance}}')], 8, 54, 'bytes', w=8),
        timeseries(25, 'Probes per second', 'Probes sent per second, over every replica.', [target('sum(%s)' % dedup('rate(credwatch_probes_total{%s}[$__rate_interval])' % conn), legend='probes')], 16, 54, 'ops', w=8),
      ],
    },
  },
}
