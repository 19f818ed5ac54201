//! Puts a network's input normalisation into the model itself, so that the shipped file
//! takes images as they are read (values in `[0, 1]`) and no user has to know the mean and
//! standard deviation the network was trained with.

use super::proto::tensor_proto::DataType;
use super::proto::{ModelProto, NodeProto, TensorProto};
use crate::error::{Error, Result};

/// The name of the raw-image input of a model with its normalisation inside.
pub const RAW_INPUT: &str = "image";

/// `model` with `(x - mean) / std` per channel before its first node: the graph input is
/// renamed [`RAW_INPUT`] and the old input name becomes the normalised tensor. `mean` and
/// `std` have one value per input channel (axis 1 of an `[N, C, H, W]` input).
pub fn prepend_normalisation(
    mut model: ModelProto,
    mean: &[f32],
    std: &[f32],
) -> Result<ModelProto> {
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| Error::Export("the model has no graph".into()))?;
    let input = graph
        .input
        .first_mut()
        .ok_or_else(|| Error::Export("the model has no input".into()))?;
    let old = input
        .name
        .clone()
        .ok_or_else(|| Error::Export("the model's input has no name".into()))?;
    if old == RAW_INPUT
        || graph
            .initializer
            .iter()
            .any(|t| t.name.as_deref() == Some("input_normalisation.mean"))
    {
        return Err(Error::Export(
            "the model already takes raw images (its normalisation is inside)".into(),
        ));
    }
    if mean.len() != std.len() || mean.is_empty() {
        return Err(Error::Export(format!(
            "a normalisation needs one mean and one std per channel, got {} and {}",
            mean.len(),
            std.len()
        )));
    }
    if let Some(bad) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(Error::Export(format!(
            "a normalisation's std must be positive and finite, got {bad}"
        )));
    }
    input.name = Some(RAW_INPUT.to_string());
    let channels = mean.len() as i64;
    let constant = |name: &str, values: &[f32]| TensorProto {
        dims: vec![1, channels, 1, 1],
        data_type: Some(DataType::Float as i32),
        name: Some(name.to_string()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    };
    graph
        .initializer
        .push(constant("input_normalisation.mean", mean));
    graph
        .initializer
        .push(constant("input_normalisation.std", std));
    let node = |op: &str, inputs: [&str; 2], output: &str| NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: Some(format!("input_normalisation.{}", op.to_lowercase())),
        op_type: Some(op.to_string()),
        ..Default::default()
    };
    let centred = "input_normalisation.centred";
    let mut nodes = vec![
        node("Sub", [RAW_INPUT, "input_normalisation.mean"], centred),
        node("Div", [centred, "input_normalisation.std"], &old),
    ];
    nodes.append(&mut graph.node);
    graph.node = nodes;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{GraphProto, ValueInfoProto};

    fn bare(input: &str) -> ModelProto {
        ModelProto {
            graph: Some(GraphProto {
                input: vec![ValueInfoProto {
                    name: Some(input.to_string()),
                    ..Default::default()
                }],
                node: vec![NodeProto {
                    input: vec![input.to_string()],
                    output: vec!["y".into()],
                    op_type: Some("Relu".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_normalisation_feeds_the_old_input_and_is_refused_twice() {
        let model = prepend_normalisation(bare("x"), &[0.5], &[0.25]).unwrap();
        let graph = model.graph.as_ref().unwrap();
        assert_eq!(graph.input[0].name.as_deref(), Some(RAW_INPUT));
        let ops: Vec<&str> = graph
            .node
            .iter()
            .filter_map(|n| n.op_type.as_deref())
            .collect();
        assert_eq!(ops, ["Sub", "Div", "Relu"]);
        assert_eq!(graph.node[1].output, ["x"]);
        assert_eq!(graph.node[0].input[0], RAW_INPUT);
        assert!(prepend_normalisation(model, &[0.5], &[0.25]).is_err());
        assert!(prepend_normalisation(bare("x"), &[0.5], &[0.0]).is_err());
        assert!(prepend_normalisation(bare("x"), &[0.5, 0.1], &[1.0]).is_err());
    }
}
