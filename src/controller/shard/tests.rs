use super::*;
use crate::api::{PromotionStatus, StageSpec};

fn shard(name: Option<&str>, default: bool) -> Shard {
    Shard::new(name.map(str::to_string), default).expect("valid")
}

fn stage(spec_shard: Option<&str>, label: Option<&str>) -> Stage {
    let mut s = Stage::new(
        "dev",
        StageSpec {
            shard: spec_shard.map(str::to_string),
            ..Default::default()
        },
    );
    s.metadata.namespace = Some("p".into());
    if let Some(l) = label {
        s.metadata.labels = Some([(LABEL_SHARD.to_string(), l.to_string())].into());
    }
    s
}

fn promotion(phase: Option<PromotionPhase>) -> Promotion {
    let mut p = Promotion::new("p1", Default::default());
    p.status = phase.map(|phase| PromotionStatus {
        phase: Some(phase),
        ..Default::default()
    });
    p
}

#[test]
fn selectors_are_kargos() {
    assert_eq!(
        shard(None, false).label_selector().as_deref(),
        Some("!kargo.akuity.io/shard")
    );
    assert_eq!(
        shard(Some("a"), false).label_selector().as_deref(),
        Some("kargo.akuity.io/shard=a")
    );
    // A named shard that is also the default cannot be selected on the server.
    assert_eq!(shard(Some("a"), true).label_selector(), None);
    assert_eq!(
        shard(None, false).foreign_selector(),
        "kargo.akuity.io/shard"
    );
    assert_eq!(
        shard(Some("a"), false).foreign_selector(),
        "kargo.akuity.io/shard!=a"
    );
    assert_eq!(
        shard(Some("a"), true).foreign_selector(),
        "kargo.akuity.io/shard,kargo.akuity.io/shard!=a"
    );
}

#[test]
fn ownership_follows_the_label_and_the_default() {
    let (default, a, both) = (
        shard(None, false),
        shard(Some("a"), false),
        shard(Some("a"), true),
    );
    assert!(default.owns(None) && default.owns(Some("")) && !default.owns(Some("a")));
    assert!(a.owns(Some("a")) && !a.owns(None) && !a.owns(Some("b")));
    assert!(both.owns(Some("a")) && both.owns(None) && !both.owns(Some("b")));
    assert!(default.is_default() && !a.is_default() && both.is_default());
    // An empty name is the default controller (SHARD_NAME="").
    assert_eq!(Shard::new(Some(String::new()), false), Ok(default.clone()));
}

#[test]
fn each_shard_has_its_own_lease() {
    assert_eq!(
        shard(None, false).lease_name("haul-controller"),
        "haul-controller"
    );
    assert_eq!(
        shard(Some("eu-1"), false).lease_name("haul-controller"),
        "haul-controller-shard-eu-1"
    );
}

#[test]
fn a_shard_name_must_be_a_label_value() {
    for bad in ["-a", "a-", "a b", "a/b", &"x".repeat(64)] {
        let err = Shard::new(Some(bad.to_string()), false).expect_err(bad);
        assert!(err.to_string().contains("--shard (SHARD_NAME)"), "{err}");
    }
    for good in ["a", "eu-west_1.b", "A9"] {
        assert!(Shard::new(Some(good.to_string()), false).is_ok(), "{good}");
    }
}

#[test]
fn spec_shard_wins_over_the_label() {
    assert_eq!(stage_shard(&stage(Some("a"), None)), Some("a"));
    assert_eq!(stage_shard(&stage(Some("a"), Some("b"))), Some("a"));
    assert_eq!(stage_shard(&stage(None, Some("b"))), Some("b"));
    assert_eq!(stage_shard(&stage(Some(""), None)), None);
    assert_eq!(stage_shard(&stage(None, None)), None);
}

#[test]
fn new_promotions_carry_their_stages_shard() {
    let mut p = promotion(None);
    label_for_stage(&mut p, &stage(Some("a"), None));
    assert_eq!(promotion_shard(&p), Some("a"));
    let mut q = promotion(None);
    label_for_stage(&mut q, &stage(None, None));
    assert_eq!(promotion_shard(&q), None);
}

#[test]
fn a_promotion_follows_its_stage_unless_it_is_running() {
    let a = shard(Some("a"), false);
    let default = shard(None, false);
    let pending = promotion(Some(PromotionPhase::Pending));
    let running = promotion(Some(PromotionPhase::Running));
    let done = promotion(Some(PromotionPhase::Succeeded));
    assert_eq!(route(&a, &pending, Some(Some("a")), false), Route::Run);
    assert_eq!(route(&a, &pending, Some(Some("a")), true), Route::Wait);
    // Unknown Stage: the reconciler says so on the Promotion.
    assert_eq!(route(&a, &pending, None, false), Route::Run);
    // Stage moved to the default controller.
    assert_eq!(
        route(&a, &pending, Some(None), false),
        Route::HandOver(None)
    );
    assert_eq!(
        route(&a, &promotion(None), Some(None), false),
        Route::HandOver(None)
    );
    assert_eq!(route(&a, &done, Some(None), false), Route::HandOver(None));
    assert_eq!(route(&a, &running, Some(None), false), Route::Run);
    // An unlabelled Promotion of a Stage of shard a, created with kubectl.
    assert_eq!(
        route(&default, &promotion(None), Some(Some("a")), false),
        Route::HandOver(Some("a".into()))
    );
}

#[test]
fn moves_are_seen_from_the_second_sighting_on() {
    let a = shard(Some("a"), false);
    let mut seen = StageShards::default();
    assert_eq!(seen.observe(&a, &stage(None, None)), Move::None);
    assert_eq!(seen.observe(&a, &stage(None, None)), Move::None);
    assert_eq!(seen.observe(&a, &stage(None, Some("a"))), Move::In);
    assert_eq!(seen.observe(&a, &stage(Some("a"), Some("a"))), Move::None);
    assert_eq!(seen.observe(&a, &stage(Some("b"), None)), Move::Out);
    seen.forget(&stage(None, None));
    assert_eq!(seen.observe(&a, &stage(None, Some("a"))), Move::None);
}

#[test]
fn relabel_patch_sets_or_removes_the_label() {
    assert_eq!(
        relabel_patch(Some("a")),
        serde_json::json!({"metadata": {"labels": {"kargo.akuity.io/shard": "a"}}})
    );
    assert_eq!(
        relabel_patch(None),
        serde_json::json!({"metadata": {"labels": {"kargo.akuity.io/shard": null}}})
    );
}

#[test]
fn a_gone_shard_is_judged_by_its_own_lease() {
    use kube_lease_manager::LeaseCreateMode;
    assert_eq!(takeover::lease_of(Some("eu")), "haul-controller-shard-eu");
    assert_eq!(takeover::lease_of(None), "haul-controller");
    // The default's Promotions may be held by a named default shard: its absent Lease proves
    // nothing; a labelled shard's absent Lease means it never ran.
    assert_eq!(takeover::create_mode(None), LeaseCreateMode::UseExistent);
    assert_eq!(
        takeover::create_mode(Some("eu")),
        LeaseCreateMode::AutoCreate
    );
    // Only under leader election.
    assert!(shard(Some("a"), false).takeover.is_none());
}
