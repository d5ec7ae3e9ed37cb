//! Results: one record per (experiment, seed, rewind point, level, arm), read from the cache
//! without training (docs/results.md).

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::plan::Plan;

fn read(cache: &Path, key: &str) -> Option<Value> {
    let bytes =
        crate::store::read_checked(&cache.join("steps").join(key).join("result.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every record of the plan whose evaluation is in the cache; `complete` is false if some are
/// missing (not run yet).
pub fn collect(plan: &Plan, cache: &Path) -> (Vec<Value>, bool) {
    let mut out = Vec::new();
    let mut complete = true;
    for r in &plan.records {
        let Some(eval) = read(cache, &r.evaluate) else {
            complete = false;
            continue;
        };
        let mut m = Map::new();
        m.insert("experiment".into(), json!(r.experiment));
        m.insert("network".into(), json!(r.network));
        m.insert("dataset".into(), json!(r.dataset));
        m.insert("parameters".into(), json!(r.parameters));
        m.insert("rewind_iteration".into(), json!(r.rewind_iteration));
        m.insert("arm".into(), json!(r.arm));
        m.insert("seed".into(), json!(r.seed));
        m.insert("level".into(), json!(r.level));
        for (field, from) in [
            ("density", "density"),
            ("test_accuracy", "test_accuracy"),
            ("test_loss", "test_loss"),
            ("test_top5", "test_top5"),
            ("layer_density", "layer_density"),
        ] {
            m.insert(field.into(), eval[from].clone());
        }
        if eval.get("best_iteration").is_some() {
            m.insert("best_iteration".into(), eval["best_iteration"].clone());
            m.insert("best_accuracy".into(), eval["best_accuracy"].clone());
            m.insert("evaluations".into(), eval["history"].clone());
        }
        if let Some(at) = eval["diverged_at"].as_u64() {
            m.insert("diverged_at".into(), json!(at));
        }
        let mut put = |prefix: &str, key: &Option<String>, fields: &[(&str, &str)]| {
            if let Some(v) = key.as_ref().and_then(|k| read(cache, k)) {
                for (name, field) in fields {
                    m.insert(format!("{prefix}{name}"), v[*field].clone());
                }
            }
        };
        put(
            "stability_pruning_",
            &r.stability_pruning,
            &[("l2", "l2"), ("angle", "angle")],
        );
        put(
            "stability_data_order_",
            &r.stability_data_order,
            &[("l2", "l2"), ("angle", "angle")],
        );
        put(
            "interpolation_",
            &r.interpolation,
            &[
                ("barrier", "barrier"),
                ("barrier_train", "barrier_train"),
                ("test_errors", "test_errors"),
                ("train_errors", "train_errors"),
            ],
        );
        out.push(Value::Object(m));
    }
    (out, complete)
}
