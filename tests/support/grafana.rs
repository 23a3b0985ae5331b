//! The generator of `packaging/grafana/tokentray-team.json`, the team's Grafana dashboard over
//! what tokentray forwards by remote write (labels `developer`, `team`, `host_name`, `model`,
//! `type`, `session_id`, `job`, and `project` where forwarded).
//!
//! `tests/grafana_dashboard.rs` compares the committed file with [`dashboard`] (run it with
//! `TOKENTRAY_WRITE_DASHBOARD=1` to rewrite the file), checks it structurally and runs every
//! panel's query against a real Prometheus.
//!
//! Every total over a time range is [`range_total`]: the series' latest value in the range minus
//! its value before the range, per series, then summed. tokentray's totals are exact cumulative
//! counters that never reset, so this is exact; `increase()` would drop the first sample of each
//! series (and every session is a new series), and a bare instant query loses a series five
//! minutes after it was last sent (a developer gone offline).

use serde_json::{json, Value};

/// Where the generated dashboard is committed, relative to the repository.
pub const PATH: &str = "packaging/grafana/tokentray-team.json";

pub const COST: &str = "claude_code_cost_usage_USD_total";
pub const TOKENS: &str = "claude_code_token_usage_tokens_total";
pub const SESSIONS: &str = "claude_code_session_count_total";
pub const ACTIVE: &str = "claude_code_active_time_seconds_total";
pub const COMMITS: &str = "claude_code_commit_count_total";
pub const PULL_REQUESTS: &str = "claude_code_pull_request_count_total";
pub const LINES: &str = "claude_code_lines_of_code_count_total";
/// tokentray's own counter of Claude Code's `claude_code.api_error` events.
pub const API_ERRORS: &str = "claude_code_api_error_count_total";

/// The label filter of the team/developer variables (every series carries them).
const WHO: &str = r#"team=~"$team",developer=~"$developer""#;
/// ... plus the model variable, for the series that have a model (cost, tokens).
const WHO_MODEL: &str = r#"team=~"$team",developer=~"$developer",model=~"$model""#;

/// Spend (or any tokentray counter) within the panel's time range, per series: what the
/// range ends with minus what it started with (0 for a series born inside the range).
pub fn range_total(metric: &str, filter: &str) -> String {
    let sel = format!("{metric}{{{filter}}}");
    format!(
        "(max_over_time({sel}[$__range]) - (max_over_time({sel}[$__range] offset $__range) or max_over_time({sel}[$__range]) * 0))"
    )
}

fn sum_by(by: &str, inner: String) -> String {
    if by.is_empty() {
        format!("sum({inner})")
    } else {
        format!("sum by ({by}) ({inner})")
    }
}

fn target(expr: String, legend: &str, ref_id: &str, table: bool) -> Value {
    json!({
        "datasource": { "type": "prometheus", "uid": "${datasource}" },
        "refId": ref_id,
        "expr": expr,
        "legendFormat": legend,
        "instant": true,
        "range": false,
        "format": if table { "table" } else { "time_series" },
    })
}

/// Builds panels in reading order, handing out ids and grid positions (24 columns wide).
struct Layout {
    panels: Vec<Value>,
    x: u64,
    y: u64,
    row_height: u64,
}

impl Layout {
    fn new() -> Layout {
        Layout { panels: Vec::new(), x: 0, y: 0, row_height: 0 }
    }

    fn next_id(&self) -> u64 {
        self.panels.len() as u64 + 1
    }

    fn row(&mut self, title: &str) {
        self.newline();
        let id = self.next_id();
        self.panels.push(json!({
            "id": id, "type": "row", "title": title, "collapsed": false, "panels": [],
            "gridPos": { "x": 0, "y": self.y, "w": 24, "h": 1 },
        }));
        self.y += 1;
    }

    fn newline(&mut self) {
        if self.x > 0 {
            self.y += self.row_height;
            self.x = 0;
            self.row_height = 0;
        }
    }

    fn place(&mut self, w: u64, h: u64, mut panel: Value) {
        if self.x + w > 24 {
            self.newline();
        }
        panel["id"] = json!(self.next_id());
        panel["gridPos"] = json!({ "x": self.x, "y": self.y, "w": w, "h": h });
        panel["datasource"] = json!({ "type": "prometheus", "uid": "${datasource}" });
        self.x += w;
        self.row_height = self.row_height.max(h);
        self.panels.push(panel);
    }

    /// One number; `time_from` (`now/d`, `now/w`, `now/M`) pins the panel to today, this
    /// week or this month whatever the dashboard's range.
    fn stat(&mut self, title: &str, unit: &str, expr: String, time_from: Option<&str>) {
        let mut p = json!({
            "type": "stat", "title": title,
            "targets": [target(expr, "", "A", false)],
            "fieldConfig": { "defaults": { "unit": unit, "decimals": 2 }, "overrides": [] },
            "options": {
                "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                "colorMode": "none", "graphMode": "none", "textMode": "auto"
            },
        });
        if let Some(t) = time_from {
            p["timeFrom"] = json!(t);
            p["hideTimeOverride"] = json!(false);
        }
        self.place(4, 4, p);
    }

    /// One bar per group, largest first.
    fn bars(&mut self, title: &str, unit: &str, expr: String, legend: &str) {
        let p = json!({
            "type": "bargauge", "title": title,
            "targets": [target(expr, legend, "A", false)],
            "fieldConfig": { "defaults": { "unit": unit, "decimals": 2, "min": 0 }, "overrides": [] },
            "options": {
                "orientation": "horizontal", "displayMode": "basic", "showUnfilled": true,
                "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false }
            },
            "transformations": [{ "id": "sortBy", "options": { "sort": [{ "field": "Value", "desc": true }] } }],
        });
        self.place(8, 8, p);
    }

    /// A table of instant queries joined on their labels.
    fn table(&mut self, title: &str, targets: Vec<(&str, String)>, w: u64) {
        let refs = ["A", "B", "C", "D", "E", "F", "G"];
        let targets: Vec<Value> = targets
            .into_iter()
            .zip(refs)
            .map(|((legend, expr), r)| target(expr, legend, r, true))
            .collect();
        let p = json!({
            "type": "table", "title": title,
            "targets": targets,
            "fieldConfig": { "defaults": { "decimals": 2 }, "overrides": [] },
            "options": { "showHeader": true, "sortBy": [{ "displayName": "Value #A", "desc": true }] },
            "transformations": [
                { "id": "merge", "options": {} },
                { "id": "organize", "options": { "excludeByName": { "Time": true } } }
            ],
        });
        self.place(w, 9, p);
    }
}

fn variable(name: &str, label: &str, query: &str) -> Value {
    json!({
        "name": name, "label": label, "type": "query",
        "datasource": { "type": "prometheus", "uid": "${datasource}" },
        "definition": query,
        "query": { "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery" },
        "refresh": 2, "includeAll": true, "multi": true, "allValue": ".*",
        "current": { "selected": true, "text": ["All"], "value": ["$__all"] },
        "sort": 1, "hide": 0, "options": [],
    })
}

fn templating() -> Value {
    json!({ "list": [
        {
            "name": "datasource", "label": "Prometheus", "type": "datasource",
            "query": "prometheus", "refresh": 1, "hide": 0, "current": {}, "options": [],
        },
        variable("team", "Team", &format!("label_values({COST}, team)")),
        variable("developer", "Developer", &format!("label_values({COST}{{team=~\"$team\"}}, developer)")),
        variable("model", "Model", &format!("label_values({COST}{{{WHO}}}, model)")),
    ]})
}

fn overview(l: &mut Layout) {
    l.row("Spend and tokens");
    for (title, time_from) in
        [("Spend today", "now/d"), ("Spend this week", "now/w"), ("Spend this month", "now/M")]
    {
        l.stat(title, "currencyUSD", sum_by("", range_total(COST, WHO_MODEL)), Some(time_from));
    }
    for (title, time_from) in
        [("Tokens today", "now/d"), ("Tokens this week", "now/w"), ("Tokens this month", "now/M")]
    {
        l.stat(title, "short", sum_by("", range_total(TOKENS, WHO_MODEL)), Some(time_from));
    }
    l.stat("Spend in range", "currencyUSD", sum_by("", range_total(COST, WHO_MODEL)), None);
    l.stat("Tokens in range", "short", sum_by("", range_total(TOKENS, WHO_MODEL)), None);
    let read = sum_by("", range_total(TOKENS, &format!("{WHO_MODEL},type=\"cacheRead\"")));
    let prompt = sum_by(
        "",
        range_total(TOKENS, &format!("{WHO_MODEL},type=~\"input|cacheRead|cacheCreation\"")),
    );
    l.stat("Cache hit ratio", "percentunit", format!("{read} / {prompt}"), None);
    l.stat("Sessions", "short", sum_by("", range_total(SESSIONS, WHO)), None);
    l.stat("Active time", "s", sum_by("", range_total(ACTIVE, WHO)), None);
    l.stat("Commits", "short", sum_by("", range_total(COMMITS, WHO)), None);
    l.stat("Pull requests", "short", sum_by("", range_total(PULL_REQUESTS, WHO)), None);
    l.stat("API errors", "short", sum_by("", range_total(API_ERRORS, WHO_MODEL)), None);
}

fn breakdowns(l: &mut Layout) {
    l.row("Who, what and where");
    l.bars(
        "Spend by developer",
        "currencyUSD",
        sum_by("developer", range_total(COST, WHO_MODEL)),
        "{{developer}}",
    );
    l.bars(
        "Spend by model",
        "currencyUSD",
        sum_by("model", range_total(COST, WHO_MODEL)),
        "{{model}}",
    );
    l.bars("Spend by agent", "currencyUSD", sum_by("job", range_total(COST, WHO_MODEL)), "{{job}}");
    l.bars(
        "Spend by project",
        "currencyUSD",
        sum_by("project", range_total(COST, &format!("{WHO_MODEL},project!=\"\""))),
        "{{project}}",
    );
    l.bars(
        "Spend by machine",
        "currencyUSD",
        sum_by("developer, host_name", range_total(COST, WHO_MODEL)),
        "{{developer}} on {{host_name}}",
    );
    l.bars("Tokens by type", "short", sum_by("type", range_total(TOKENS, WHO_MODEL)), "{{type}}");
    l.bars("Lines changed", "short", sum_by("type", range_total(LINES, WHO)), "{{type}}");
    l.bars(
        "API errors by developer and model",
        "short",
        sum_by("developer, model", range_total(API_ERRORS, WHO_MODEL)),
        "{{developer}}: {{model}}",
    );
}

fn tables(l: &mut Layout) {
    l.row("Developers and sessions");
    l.table(
        "By developer",
        vec![
            ("spend", sum_by("developer", range_total(COST, WHO_MODEL))),
            ("tokens", sum_by("developer", range_total(TOKENS, WHO_MODEL))),
            ("sessions", sum_by("developer", range_total(SESSIONS, WHO))),
            ("active time", sum_by("developer", range_total(ACTIVE, WHO))),
            ("commits", sum_by("developer", range_total(COMMITS, WHO))),
            ("pull requests", sum_by("developer", range_total(PULL_REQUESTS, WHO))),
        ],
        12,
    );
    l.table(
        "Top sessions by cost",
        vec![(
            "spend",
            format!("topk(10, {})", sum_by("developer, session_id", range_total(COST, WHO_MODEL))),
        )],
        12,
    );
}

/// The whole dashboard (Grafana 10.x/11.x JSON model, `schemaVersion` 39).
pub fn dashboard() -> Value {
    let mut l = Layout::new();
    overview(&mut l);
    breakdowns(&mut l);
    tables(&mut l);
    json!({
        "__inputs": [],
        "__requires": [
            { "type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0" },
            { "type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0" }
        ],
        "uid": "tokentray-team",
        "title": "tokentray: Claude Code, team",
        "description": "Spend, tokens and activity forwarded by tokentray (remote write). Generated by tests/support/grafana.rs.",
        "tags": ["tokentray", "claude-code"],
        "editable": true,
        "graphTooltip": 0,
        "schemaVersion": 39,
        "version": 1,
        "timezone": "browser",
        "refresh": "1m",
        "time": { "from": "now/d", "to": "now" },
        "timepicker": {},
        "annotations": { "list": [] },
        "links": [],
        "templating": templating(),
        "panels": l.panels,
    })
}

/// The committed form: pretty JSON with a final newline.
pub fn render() -> String {
    let mut text = serde_json::to_string_pretty(&dashboard()).unwrap_or_default();
    text.push('\n');
    text
}
