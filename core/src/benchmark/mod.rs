//! Published benchmark data as evaluators and latency models: the NAS-Bench-201 table
//! (accuracies and per-device latencies) and Once-for-All's accuracy predictor and Note10
//! lookup tables.

pub mod nb201;
pub mod ofa;

pub use nb201::{Nb201Table, TableLatency};
pub use ofa::{Note10Lut, OfaPredictor};
