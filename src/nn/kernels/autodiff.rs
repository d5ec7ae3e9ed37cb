//! [`Kernels`] under autodiff: each operation records a backward step that calls the inner
//! backend's gradients (burn's custom-operation extension point).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{ConvOptions, FloatTensor};

use super::Kernels;

#[derive(Debug)]
struct Conv2dBackward;

impl<B: Kernels, const N: usize> Backward<B, N> for Conv2dBackward {
    /// Checkpointed input, weight and bias, and the options.
    type State = (NodeId, NodeId, Option<NodeId>, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let (x_id, weight_id, bias_id, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_id);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_id);
        let mut parents = ops.parents.into_iter();
        let (x_node, weight_node, bias_node) = (
            parents.next().flatten(),
            parents.next().flatten(),
            parents.next().flatten(),
        );
        if let (Some(node), Some(id)) = (bias_node, bias_id) {
            let bias = checkpointer.retrieve_node_output::<FloatTensor<B>>(id);
            grads.register::<B>(node.id, B::conv2d_bias_grad(x.clone(), bias, dy.clone()));
        }
        if let Some(node) = weight_node {
            let grad =
                B::conv2d_weight_grad(x.clone(), weight.clone(), dy.clone(), options.clone());
            grads.register::<B>(node.id, grad);
        }
        if let Some(node) = x_node {
            grads.register::<B>(node.id, B::conv2d_input_grad(x, weight, dy, options));
        }
    }
}

#[derive(Debug)]
struct LinearBackward;

impl<B: Kernels, const N: usize> Backward<B, N> for LinearBackward {
    /// Checkpointed input and weight.
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let (x_id, weight_id) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_id);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_id);
        let mut parents = ops.parents.into_iter();
        let (x_node, weight_node, bias_node) = (
            parents.next().flatten(),
            parents.next().flatten(),
            parents.next().flatten(),
        );
        if let Some(node) = bias_node {
            grads.register::<B>(node.id, B::linear_bias_grad(dy.clone()));
        }
        if let Some(node) = weight_node {
            grads.register::<B>(node.id, B::linear_weight_grad(x, dy.clone()));
        }
        if let Some(node) = x_node {
            grads.register::<B>(node.id, B::linear_input_grad(weight, dy));
        }
    }
}

#[derive(Debug)]
struct BatchNormBackward;

impl<B: Kernels> Backward<B, 3> for BatchNormBackward {
    /// Checkpointed input and scale, the shift, the batch statistics, eps, and the output when
    /// it went through a ReLU.
    type State = (
        NodeId,
        NodeId,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        f64,
        Option<FloatTensor<B>>,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let (x_id, gamma_id, beta, mean, var, eps, relu_output) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_id);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma_id);
        let [dx, dgamma, dbeta] =
            B::batchnorm_backward(x, gamma, beta, mean, var, eps, relu_output, dy);
        let [x_node, gamma_node, beta_node] = ops.parents;
        for (node, grad) in [(x_node, dx), (gamma_node, dgamma), (beta_node, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// A layer's forward pass under autodiff: `op` is recorded with `inputs` as its parents (x,
/// weight and, when the layer has one, bias), `state` picks what its backward step keeps (it
/// gets a function that checkpoints an input), and `forward` computes the output from the
/// inputs' primitives. One function for layers with and without a bias, whose parent counts
/// (3 and 2) are different types.
fn layer<B, C, O, const N: usize>(
    op: O,
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    state: impl FnOnce(
        &[FloatTensor<Autodiff<B, C>>; N],
        &mut dyn FnMut(&FloatTensor<Autodiff<B, C>>) -> NodeId,
    ) -> O::State,
    forward: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: Kernels,
    C: CheckpointStrategy,
    O: Backward<B, N>,
{
    let prep = op
        .prepare::<C>(inputs.each_ref().map(|t| t.node.clone()))
        .compute_bound()
        .stateful();
    match prep {
        OpsKind::Tracked(mut prep) => {
            let kept = state(&inputs, &mut |t| prep.checkpoint(t));
            prep.finish(kept, forward(inputs.map(|t| t.primitive)))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(inputs.map(|t| t.primitive))),
    }
}

impl<B: Kernels, C: CheckpointStrategy> Kernels for Autodiff<B, C> {
    const SPLITS_ON_CPU: bool = B::SPLITS_ON_CPU;

    fn linear_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        match bias {
            Some(bias) => layer::<B, C, _, 3>(
                LinearBackward,
                [x, weight, bias],
                |t, cp| (cp(&t[0]), cp(&t[1])),
                |[x, w, b]| B::linear_forward(x, w, Some(b)),
            ),
            None => layer::<B, C, _, 2>(
                LinearBackward,
                [x, weight],
                |t, cp| (cp(&t[0]), cp(&t[1])),
                |[x, w]| B::linear_forward(x, w, None),
            ),
        }
    }

    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let kept_options = options.clone();
        match bias {
            Some(bias) => layer::<B, C, _, 3>(
                Conv2dBackward,
                [x, weight, bias],
                |t, cp| (cp(&t[0]), cp(&t[1]), Some(cp(&t[2])), kept_options),
                |[x, w, b]| B::conv2d_forward(x, w, Some(b), options),
            ),
            None => layer::<B, C, _, 2>(
                Conv2dBackward,
                [x, weight],
                |t, cp| (cp(&t[0]), cp(&t[1]), None, kept_options),
                |[x, w]| B::conv2d_forward(x, w, None, options),
            ),
        }
    }

    fn batchnorm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
        relu: bool,
    ) -> [FloatTensor<Self>; 3] {
        let prep = BatchNormBackward
            .prepare::<C>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
            .compute_bound()
            .stateful();
        let (y, mean, var) = match prep {
            OpsKind::Tracked(mut prep) => {
                let (x_id, gamma_id) = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let beta = beta.primitive;
                let [y, mean, var] =
                    B::batchnorm_forward(x.primitive, gamma.primitive, beta.clone(), eps, relu);
                let out = relu.then(|| y.clone());
                let state = (x_id, gamma_id, beta, mean.clone(), var.clone(), eps, out);
                let y = prep.finish(state, y);
                (y, mean, var)
            }
            OpsKind::UnTracked(prep) => {
                let [y, mean, var] =
                    B::batchnorm_forward(x.primitive, gamma.primitive, beta.primitive, eps, relu);
                (prep.finish(y), mean, var)
            }
        };
        [y, Self::from_inner(mean), Self::from_inner(var)]
    }
}
