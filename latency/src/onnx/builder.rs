//! A graph builder over the generated ONNX types: each method adds one layer, names its
//! output, tracks its shape, and asks [`Weights`] for parameters. Batch norm after a
//! convolution is folded into the convolution's weight and bias (as deployment does)
//! unless the builder is told to keep it as a `BatchNormalization` node.

use prost::Message;

use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto, type_proto,
};
use super::weights::Weights;
use super::{IR_VERSION, OPSET};

/// A value in the graph: its name and shape (`[N, C, H, W]` for images, `[N, F]` after
/// flattening).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    /// The value's name in the graph.
    pub name: String,
    /// Its static shape.
    pub shape: Vec<usize>,
}

impl Tensor {
    /// Channels of an NCHW value.
    pub fn channels(&self) -> usize {
        self.shape[1]
    }

    /// Height (= width for the square images of the seed spaces).
    pub fn size(&self) -> usize {
        self.shape[2]
    }
}

/// Settings of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Output channels.
    pub out: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on every side.
    pub pad: usize,
    /// Dilation.
    pub dilation: usize,
    /// Groups (input channels for a depthwise convolution).
    pub groups: usize,
}

impl ConvSpec {
    /// A "same"-padded convolution (`pad = dilation * (kernel - 1) / 2`).
    pub fn same(out: usize, kernel: usize, stride: usize) -> Self {
        ConvSpec {
            out,
            kernel,
            stride,
            pad: (kernel - 1) / 2,
            dilation: 1,
            groups: 1,
        }
    }

    /// With these groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// With this dilation, padding kept "same".
    pub fn dilated(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self.pad = dilation * (self.kernel - 1) / 2;
        self
    }

    /// With explicit padding.
    pub fn padded(mut self, pad: usize) -> Self {
        self.pad = pad;
        self
    }
}

fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..Default::default()
    }
}

fn value_info(tensor: &Tensor) -> ValueInfoProto {
    let dims = tensor
        .shape
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(tensor.name.clone()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

/// Builds one ONNX graph layer by layer.
pub struct GraphBuilder<'w> {
    weights: &'w mut dyn Weights,
    fold_batch_norm: bool,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<Tensor>,
    counter: usize,
    scope: Vec<String>,
}

impl<'w> GraphBuilder<'w> {
    /// A builder drawing parameters from `weights`; batch norm is folded.
    pub fn new(weights: &'w mut dyn Weights) -> Self {
        GraphBuilder {
            weights,
            fold_batch_norm: true,
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            counter: 0,
            scope: Vec::new(),
        }
    }

    /// Keeps batch norm as `BatchNormalization` nodes (for checking the folding).
    pub fn keep_batch_norm(mut self) -> Self {
        self.fold_batch_norm = false;
        self
    }

    /// Runs `body` with `name` appended to the layer-name scope (`stage1.cell0.edge2`).
    pub fn scoped<T>(&mut self, name: &str, body: impl FnOnce(&mut Self) -> T) -> T {
        self.scope.push(name.to_string());
        let out = body(self);
        self.scope.pop();
        out
    }

    fn layer_name(&self, leaf: &str) -> String {
        let mut parts = self.scope.clone();
        parts.push(leaf.to_string());
        parts.join(".")
    }

    fn fresh(&mut self, op: &str) -> String {
        self.counter += 1;
        format!("{}_{}", op.to_lowercase(), self.counter)
    }

    fn constant(&mut self, name: &str, dims: &[usize], values: Vec<f32>) -> String {
        let unique = format!("{name}#{}", self.initializers.len());
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            name: Some(unique.clone()),
            raw_data: Some(raw),
            ..Default::default()
        });
        unique
    }

    fn constant_i64(&mut self, name: &str, values: &[i64]) -> String {
        let unique = format!("{name}#{}", self.initializers.len());
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            name: Some(unique.clone()),
            int64_data: values.to_vec(),
            ..Default::default()
        });
        unique
    }

    fn node(
        &mut self,
        op: &str,
        inputs: Vec<String>,
        attributes: Vec<AttributeProto>,
        shape: Vec<usize>,
    ) -> Tensor {
        let output = self.fresh(op);
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.clone()],
            name: Some(output.clone()),
            op_type: Some(op.to_string()),
            attribute: attributes,
            ..Default::default()
        });
        Tensor {
            name: output,
            shape,
        }
    }

    /// A graph input of the given shape.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> Tensor {
        let tensor = Tensor {
            name: name.to_string(),
            shape: shape.to_vec(),
        };
        self.inputs.push(tensor.clone());
        tensor
    }

    fn conv_node(
        &mut self,
        x: &Tensor,
        spec: ConvSpec,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Tensor {
        let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        assert_eq!(c % spec.groups, 0, "channels divisible by groups");
        let extent = spec.dilation * (spec.kernel - 1) + 1;
        let out_h = (h + 2 * spec.pad - extent) / spec.stride + 1;
        let out_w = (w + 2 * spec.pad - extent) / spec.stride + 1;
        let k = spec.kernel;
        let weight_name = self.constant("w", &[spec.out, c / spec.groups, k, k], weight);
        let mut inputs = vec![x.name.clone(), weight_name];
        if let Some(bias) = bias {
            inputs.push(self.constant("b", &[spec.out], bias));
        }
        let pad = spec.pad as i64;
        let attributes = vec![
            attr_ints("kernel_shape", &[k as i64, k as i64]),
            attr_ints("strides", &[spec.stride as i64, spec.stride as i64]),
            attr_ints("pads", &[pad, pad, pad, pad]),
            attr_ints("dilations", &[spec.dilation as i64, spec.dilation as i64]),
            attr_int("group", spec.groups as i64),
        ];
        self.node("Conv", inputs, attributes, vec![n, spec.out, out_h, out_w])
    }

    /// A convolution without batch norm, with or without bias.
    pub fn conv(&mut self, x: &Tensor, spec: ConvSpec, bias: bool) -> Tensor {
        let name = self.layer_name("conv");
        let weight = self.weights.conv(
            &name,
            [
                spec.out,
                x.channels() / spec.groups,
                spec.kernel,
                spec.kernel,
            ],
        );
        let bias = bias.then(|| self.weights.bias(&format!("{name}.bias"), spec.out));
        self.conv_node(x, spec, weight, bias)
    }

    /// A convolution followed by batch norm: folded into one `Conv` with bias, or kept as
    /// `Conv` + `BatchNormalization`.
    pub fn conv_bn(&mut self, x: &Tensor, spec: ConvSpec) -> Tensor {
        let name = self.layer_name("conv");
        let mut weight = self.weights.conv(
            &name,
            [
                spec.out,
                x.channels() / spec.groups,
                spec.kernel,
                spec.kernel,
            ],
        );
        let bn = self.weights.batch_norm(&format!("{name}.bn"), spec.out);
        if !self.fold_batch_norm {
            let y = self.conv_node(x, spec, weight, None);
            return self.batch_norm_node(&y, bn);
        }
        let per_out = weight.len() / spec.out;
        let mut bias = Vec::with_capacity(spec.out);
        for o in 0..spec.out {
            let scale = bn.gamma[o] / (bn.var[o] + bn.eps).sqrt();
            for w in &mut weight[o * per_out..(o + 1) * per_out] {
                *w *= scale;
            }
            bias.push(bn.beta[o] - bn.mean[o] * scale);
        }
        self.conv_node(x, spec, weight, Some(bias))
    }

    fn batch_norm_node(&mut self, x: &Tensor, bn: super::BatchNorm) -> Tensor {
        let c = x.channels();
        let inputs = vec![
            x.name.clone(),
            self.constant("gamma", &[c], bn.gamma),
            self.constant("beta", &[c], bn.beta),
            self.constant("mean", &[c], bn.mean),
            self.constant("var", &[c], bn.var),
        ];
        self.node(
            "BatchNormalization",
            inputs,
            vec![attr_float("epsilon", bn.eps)],
            x.shape.clone(),
        )
    }

    /// Batch norm on its own (not after a convolution), e.g. NAS-Bench-201's last act.
    pub fn batch_norm(&mut self, x: &Tensor) -> Tensor {
        let name = self.layer_name("bn");
        let bn = self.weights.batch_norm(&name, x.channels());
        self.batch_norm_node(x, bn)
    }

    fn unary(&mut self, op: &str, x: &Tensor, attributes: Vec<AttributeProto>) -> Tensor {
        self.node(op, vec![x.name.clone()], attributes, x.shape.clone())
    }

    /// ReLU.
    pub fn relu(&mut self, x: &Tensor) -> Tensor {
        self.unary("Relu", x, Vec::new())
    }

    /// ReLU6 (`Clip` to [0, 6]).
    pub fn relu6(&mut self, x: &Tensor) -> Tensor {
        let low = self.constant("zero", &[], vec![0.0]);
        let high = self.constant("six", &[], vec![6.0]);
        self.node(
            "Clip",
            vec![x.name.clone(), low, high],
            Vec::new(),
            x.shape.clone(),
        )
    }

    /// h-swish, `x * relu6(x + 3) / 6`.
    pub fn hswish(&mut self, x: &Tensor) -> Tensor {
        self.unary("HardSwish", x, Vec::new())
    }

    /// h-sigmoid, `relu6(x + 3) / 6`.
    pub fn hsigmoid(&mut self, x: &Tensor) -> Tensor {
        self.unary(
            "HardSigmoid",
            x,
            vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)],
        )
    }

    /// Logistic sigmoid.
    pub fn sigmoid(&mut self, x: &Tensor) -> Tensor {
        self.unary("Sigmoid", x, Vec::new())
    }

    /// Element-wise sum (shapes must match).
    pub fn add(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        assert_eq!(a.shape, b.shape, "add of different shapes");
        self.node(
            "Add",
            vec![a.name.clone(), b.name.clone()],
            Vec::new(),
            a.shape.clone(),
        )
    }

    /// Sum of several values (a cell node's inputs).
    pub fn sum(&mut self, values: &[Tensor]) -> Tensor {
        assert!(!values.is_empty(), "sum of nothing");
        let mut total = values[0].clone();
        for v in &values[1..] {
            total = self.add(&total, v);
        }
        total
    }

    /// Element-wise product with broadcasting of `b` (e.g. `[N, C, 1, 1]` gates).
    pub fn mul(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        self.node(
            "Mul",
            vec![a.name.clone(), b.name.clone()],
            Vec::new(),
            a.shape.clone(),
        )
    }

    /// `x * 0`: the zero operation as NAS-Bench-201 and DARTS compute it.
    pub fn zeros_like(&mut self, x: &Tensor) -> Tensor {
        let zero = self.constant("zero", &[], vec![0.0]);
        self.node(
            "Mul",
            vec![x.name.clone(), zero],
            Vec::new(),
            x.shape.clone(),
        )
    }

    fn pool(
        &mut self,
        op: &str,
        x: &Tensor,
        kernel: usize,
        stride: usize,
        pad: usize,
        exclude_pad: bool,
    ) -> Tensor {
        let out = (x.size() + 2 * pad - kernel) / stride + 1;
        let p = pad as i64;
        let mut attributes = vec![
            attr_ints("kernel_shape", &[kernel as i64, kernel as i64]),
            attr_ints("strides", &[stride as i64, stride as i64]),
            attr_ints("pads", &[p, p, p, p]),
        ];
        if op == "AveragePool" {
            attributes.push(attr_int("count_include_pad", i64::from(!exclude_pad)));
        }
        self.node(
            op,
            vec![x.name.clone()],
            attributes,
            vec![x.shape[0], x.shape[1], out, out],
        )
    }

    /// Average pooling that does not count padding (NAS-Bench-201's and DARTS's).
    pub fn avg_pool(&mut self, x: &Tensor, kernel: usize, stride: usize, pad: usize) -> Tensor {
        self.pool("AveragePool", x, kernel, stride, pad, true)
    }

    /// Max pooling.
    pub fn max_pool(&mut self, x: &Tensor, kernel: usize, stride: usize, pad: usize) -> Tensor {
        self.pool("MaxPool", x, kernel, stride, pad, false)
    }

    /// Global average pooling to `[N, C, 1, 1]`.
    pub fn global_avg_pool(&mut self, x: &Tensor) -> Tensor {
        self.node(
            "GlobalAveragePool",
            vec![x.name.clone()],
            Vec::new(),
            vec![x.shape[0], x.shape[1], 1, 1],
        )
    }

    /// Concatenation along channels.
    pub fn concat(&mut self, values: &[Tensor]) -> Tensor {
        let mut shape = values[0].shape.clone();
        shape[1] = values.iter().map(Tensor::channels).sum();
        self.node(
            "Concat",
            values.iter().map(|v| v.name.clone()).collect(),
            vec![attr_int("axis", 1)],
            shape,
        )
    }

    /// `x[:, :, offset:, offset:]`.
    pub fn crop_top_left(&mut self, x: &Tensor, offset: usize) -> Tensor {
        let starts = self.constant_i64("starts", &[offset as i64, offset as i64]);
        let ends = self.constant_i64("ends", &[i64::MAX, i64::MAX]);
        let axes = self.constant_i64("axes", &[2, 3]);
        let mut shape = x.shape.clone();
        shape[2] -= offset;
        shape[3] -= offset;
        self.node(
            "Slice",
            vec![x.name.clone(), starts, ends, axes],
            Vec::new(),
            shape,
        )
    }

    /// Flatten to `[N, rest]` and a fully connected layer with bias.
    pub fn linear(&mut self, x: &Tensor, out: usize) -> Tensor {
        let features: usize = x.shape[1..].iter().product();
        let flat = self.node(
            "Flatten",
            vec![x.name.clone()],
            vec![attr_int("axis", 1)],
            vec![x.shape[0], features],
        );
        let name = self.layer_name("linear");
        let weight = self.weights.linear(&name, out, features);
        let bias = self.weights.bias(&format!("{name}.bias"), out);
        let w = self.constant("w", &[out, features], weight);
        let b = self.constant("b", &[out], bias);
        self.node(
            "Gemm",
            vec![flat.name, w, b],
            vec![attr_int("transB", 1)],
            vec![x.shape[0], out],
        )
    }

    /// The finished model with `output` as its only output.
    pub fn finish(mut self, output: &Tensor, graph_name: &str) -> ModelProto {
        let out = self.node(
            "Identity",
            vec![output.name.clone()],
            Vec::new(),
            output.shape.clone(),
        );
        let mut output_info = value_info(&out);
        output_info.name = Some("output".to_string());
        self.nodes.last_mut().expect("identity node").output = vec!["output".to_string()];
        ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET),
            }],
            producer_name: Some("hwnas".to_string()),
            producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            graph: Some(GraphProto {
                node: self.nodes,
                name: Some(graph_name.to_string()),
                initializer: self.initializers,
                input: self.inputs.iter().map(value_info).collect(),
                output: vec![output_info],
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The protobuf bytes of a model.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}
