//! The pipeline graph's shape: which column each Warehouse and Stage goes in, and the edges
//! between them. Warehouses are column 0; a Stage sits one column right of the deepest thing it
//! takes Freight from, so every edge points rightwards and a long pipeline reads left to right.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::api::{FreightOriginKind, Stage};

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `warehouse` or `stage`.
    pub kind: &'static str,
    pub name: String,
    pub column: usize,
}

/// An edge: Freight flows `from` → `to` (node ids `warehouse/<name>` or `stage/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
}

/// The laid-out graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Graph {
    /// Sorted by column, then name.
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// Lays out `stages` and `warehouses` (names). A Stage's upstreams that do not exist are still
/// drawn as edges only when the node exists; cycles (invalid, but possible in a cluster) are cut
/// by bounding the relaxation to one pass per Stage.
pub fn layout(warehouses: &[String], stages: &[Stage]) -> Graph {
    let mut edges = BTreeSet::new();
    let known_warehouses: BTreeSet<&str> = warehouses.iter().map(String::as_str).collect();
    let mut upstream: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let stage_names: BTreeSet<String> = stages
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    for stage in stages {
        let Some(name) = stage.metadata.name.clone() else {
            continue;
        };
        let ups = upstream.entry(name.clone()).or_default();
        for req in &stage.spec.requested_freight {
            let warehouse = (req.origin.kind == FreightOriginKind::Warehouse)
                .then_some(req.origin.name.as_str())
                .filter(|w| known_warehouses.contains(w));
            if req.sources.direct == Some(true)
                && let Some(w) = warehouse
            {
                edges.insert(Edge {
                    from: format!("warehouse/{w}"),
                    to: format!("stage/{name}"),
                });
            }
            for up in &req.sources.stages {
                if stage_names.contains(up) {
                    ups.push(up.clone());
                    edges.insert(Edge {
                        from: format!("stage/{up}"),
                        to: format!("stage/{name}"),
                    });
                }
            }
        }
    }
    let mut column: BTreeMap<String, usize> = stage_names.iter().map(|n| (n.clone(), 1)).collect();
    // Longest-path relaxation; at most one pass per Stage, so a cycle cannot loop forever.
    for _ in 0..stage_names.len() {
        let mut changed = false;
        for (name, ups) in &upstream {
            let want = ups
                .iter()
                .filter_map(|u| column.get(u))
                .map(|c| c + 1)
                .max()
                .unwrap_or(1);
            if column.get(name).is_some_and(|&c| c < want) {
                column.insert(name.clone(), want);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut nodes: Vec<Node> = warehouses
        .iter()
        .map(|w| Node {
            kind: "warehouse",
            name: w.clone(),
            column: 0,
        })
        .chain(column.into_iter().map(|(name, column)| Node {
            kind: "stage",
            name,
            column,
        }))
        .collect();
    nodes.sort_by(|a, b| (a.column, &a.name).cmp(&(b.column, &b.name)));
    Graph {
        nodes,
        edges: edges.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stage(name: &str, sources: serde_json::Value) -> Stage {
        serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": name, "namespace": "p"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": sources}]}
        }))
        .expect("stage")
    }

    fn columns(g: &Graph) -> Vec<(String, usize)> {
        g.nodes.iter().map(|n| (n.name.clone(), n.column)).collect()
    }

    #[test]
    fn stages_sit_right_of_their_deepest_upstream() {
        let g = layout(
            &["w".into()],
            &[
                stage("prod", json!({"stages": ["uat", "dev"]})),
                stage("uat", json!({"stages": ["dev"]})),
                stage("dev", json!({"direct": true})),
            ],
        );
        assert_eq!(
            columns(&g),
            vec![
                ("w".into(), 0),
                ("dev".into(), 1),
                ("uat".into(), 2),
                ("prod".into(), 3)
            ]
        );
        assert!(g.edges.contains(&Edge {
            from: "warehouse/w".into(),
            to: "stage/dev".into()
        }));
        assert!(g.edges.contains(&Edge {
            from: "stage/uat".into(),
            to: "stage/prod".into()
        }));
        assert_eq!(g.edges.len(), 4);
    }

    #[test]
    fn a_cycle_and_missing_upstreams_end() {
        let g = layout(
            &["w".into()],
            &[
                stage("a", json!({"stages": ["b"]})),
                stage("b", json!({"stages": ["a", "gone"]})),
            ],
        );
        assert_eq!(g.nodes.len(), 3);
        assert!(g.edges.iter().all(|e| !e.from.contains("gone")));
    }
}
