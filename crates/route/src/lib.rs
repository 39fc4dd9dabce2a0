//! Routing for `auto` routes: pick the cheapest candidate model that is predicted to answer a
//! prompt well enough, and say why.
//!
//! Owns prompt features (`features`), the per-candidate classifier and its trainer (`model`),
//! the policy with rule routes and the explained decision (`policy`), the versioned artifact
//! (`artifact`), and the offline quality metrics (`metrics`). Pure: no network, no clocks,
//! no global state; the only I/O is reading or writing an artifact at a path the caller gives.
//! It must not know about HTTP, config files or providers: the gateway builds a [`Router`] from
//! its config and calls [`Router::decide`].

pub mod artifact;
pub mod calibrate;
pub mod estimator;
pub mod features;
pub mod metrics;
pub mod model;
pub mod neighbours;
pub mod neighbours_fit;
pub mod policy;

pub use artifact::{Artifact, ArtifactError, TrainingData, FORMAT_VERSION};
pub use calibrate::{recalibrate, Calibration, CalibrationConfig, Outcome, PolicyCalibration};
pub use estimator::{Estimates, Estimator};
pub use features::{FeatureConfig, Features, Featurizer};
pub use model::{train_head, Classifier, Head, TrainConfig};
pub use neighbours::{Evidence, Neighbours, StoredNeighbours};
pub use policy::{
    BadPolicy, Bars, Candidate, CandidateScore, Chosen, Decision, Policy, RouteError, RouteRequest,
    Router, Rule, RuleMatch,
};
