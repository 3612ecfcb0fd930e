//! Two fast paths the optimised plans need and tract 0.23 does not take on its own.
//!
//! Both were found by timing the plans op by op (MiniLM at 30 tokens, the LSTM at 15), and both
//! leave every score as it was: they change where the work goes, not the arithmetic.
//!
//! - **Natural strides after an axis change.** tract's optimised element-wise ops
//!   (`OptAddUnicast`, `OptSubByScalar`, the fused `OptBinChain` of a layer norm) take their
//!   vectorised kernels only when both operands carry the natural C-order strides of their shape,
//!   and otherwise fall back to a generic broadcasting loop. An `AxisOp` that inserts a unit axis
//!   (the unsqueeze of the attention mask; the `[batch·seq, hidden]` → `[batch, seq, hidden]`
//!   reshape after every matmul, which is a unit-axis insertion when the batch is 1) gives that
//!   axis the next axis's stride. The data is laid out naturally, but the strides differ on a unit
//!   axis, so every residual add and layer norm of a single text ran the slow loop: 1.5 of
//!   MiniLM's 6.8 ms. [`NaturalAxisOp`] wraps each `AxisOp` and, when an output is laid out
//!   naturally on every axis longer than one, gives it the natural strides. A unit axis is never
//!   stepped along, so its stride has no effect on which element is read.
//! - **Max and min over an axis that is not the last.** tract reduces max and min one output
//!   element at a time, slicing the input anew for each: 29 µs of the LSTM's 196 µs go to its
//!   max-pooling over time (`[1, 15, 192]` → `[1, 1, 192]`). [`AxisExtremum`] reduces such an axis
//!   row by row instead, with tract's own fold (start at `f32::MIN`, keep `acc` when `acc > v`), so
//!   the result is the same bit for bit.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{EvalContext, EvalOp, Op, StaticName, TypedOp};
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
use tract_onnx::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

/// Puts the fast paths in an optimised model.
pub(super) fn apply(model: &mut TypedModel) {
    for node in model.nodes_mut() {
        if let Some(op) = node.op_as::<AxisOp>() {
            node.op = Box::new(NaturalAxisOp(op.clone()));
        } else if let Some(reduce) = node.op_as::<Reduce>() {
            if let Some(op) = AxisExtremum::for_reduce(reduce) {
                node.op = Box::new(op);
            }
        }
    }
}

/// An `AxisOp` whose outputs get natural strides; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct NaturalAxisOp(AxisOp);

impl Op for NaturalAxisOp {
    fn name(&self) -> StaticName {
        self.0.name()
    }

    op_as_typed_op!();
}

impl EvalOp for NaturalAxisOp {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0
            .eval(ctx, inputs)?
            .into_iter()
            .map(|value| {
                if is_natural(&value) {
                    return Ok(value);
                }
                let mut tensor = value.into_tensor();
                with_natural_strides(&mut tensor)?;
                Ok(tensor.into_tvalue())
            })
            .collect()
    }
}

impl TypedOp for NaturalAxisOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}

fn is_natural(tensor: &Tensor) -> bool {
    tensor.strides() == &*Tensor::natural_strides(tensor.shape())
}

/// Gives `tensor` the natural strides of its shape when that does not move any element, that is
/// when its strides are already the natural ones on every axis longer than one; otherwise leaves
/// it as it is (tract's generic path handles any strides).
fn with_natural_strides(tensor: &mut Tensor) -> TractResult<()> {
    let natural = Tensor::natural_strides(tensor.shape());
    let same_layout = tensor
        .shape()
        .iter()
        .zip(tensor.strides().iter().zip(natural.iter()))
        .all(|(&dim, (stride, natural))| dim <= 1 || stride == natural);
    if !same_layout || tensor.len() != tensor.shape().iter().product::<usize>() {
        return Ok(());
    }
    // A shape change recomputes natural strides, and setting the same shape again does nothing,
    // so go through the flat shape. Safe: the elements are already in this order.
    let shape: TVec<usize> = tensor.shape().into();
    tensor.set_shape(&[tensor.len()])?;
    tensor.set_shape(&shape)
}

/// Max or min of f32 over one axis that is not the last; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct AxisExtremum {
    /// The op it replaces, which still runs for anything but a natural f32 tensor.
    reduce: Reduce,
    axis: usize,
    max: bool,
}

impl AxisExtremum {
    /// The fast path for `reduce`, when it has one. The last axis stays with tract, which has a
    /// vectorised kernel for a contiguous row.
    fn for_reduce(reduce: &Reduce) -> Option<Self> {
        let max = match reduce.reducer {
            Reducer::Max => true,
            Reducer::Min => false,
            _ => return None,
        };
        match reduce.axes.as_slice() {
            [axis] => Some(Self {
                reduce: reduce.clone(),
                axis: *axis,
                max,
            }),
            _ => None,
        }
    }

    /// `None` when the input is not an f32 tensor in C order with the axis before its last.
    fn reduce_f32(&self, input: &Tensor) -> Option<Tensor> {
        let shape = input.shape();
        if input.datum_type() != f32::datum_type() || self.axis + 1 >= shape.len() {
            return None;
        }
        let view = input.to_plain_array_view::<f32>().ok()?;
        // A slice only when the elements lie in C order (unit axes' strides do not matter).
        let data = view.as_slice()?;
        let outer: usize = shape[..self.axis].iter().product();
        let length = shape[self.axis];
        let inner: usize = shape[self.axis + 1..].iter().product();
        // tract's fold, kept exactly: the same start and the same comparison give the same
        // answer for every input, NaN included.
        let mut out = vec![if self.max { f32::MIN } else { f32::MAX }; outer * inner];
        for (block, acc) in data
            .chunks_exact(length * inner)
            .zip(out.chunks_exact_mut(inner))
        {
            for row in block.chunks_exact(inner) {
                if self.max {
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a = if *a > v { *a } else { v };
                    }
                } else {
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a = if *a < v { *a } else { v };
                    }
                }
            }
        }
        let mut out_shape: TVec<usize> = shape.into();
        out_shape[self.axis] = 1;
        Tensor::from_shape(&out_shape, &out).ok()
    }
}

impl Op for AxisExtremum {
    fn name(&self) -> StaticName {
        self.reduce.name()
    }

    op_as_typed_op!();
}

impl EvalOp for AxisExtremum {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        match inputs.first().and_then(|input| self.reduce_f32(input)) {
            Some(out) => Ok(tvec!(out.into_tvalue())),
            None => self.reduce.eval(ctx, inputs),
        }
    }
}

impl TypedOp for AxisExtremum {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.reduce.output_facts(inputs)
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(tensor: &Tensor) -> Vec<f32> {
        tensor
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn a_unit_axis_insertion_gets_natural_strides_and_keeps_its_values() {
        let mut tensor = tensor2(&[[1f32, 2., 3.], [4., 5., 6.]]);
        tensor.insert_axis(0).unwrap();
        assert!(
            !is_natural(&tensor),
            "tract's insert_axis: {:?}",
            tensor.strides()
        );
        with_natural_strides(&mut tensor).unwrap();
        assert!(is_natural(&tensor));
        assert_eq!(tensor.shape(), &[1, 2, 3]);
        assert_eq!(values(&tensor), [1., 2., 3., 4., 5., 6.]);
    }

    #[test]
    fn a_transposed_layout_is_left_to_tract() {
        // A column-major view of 3 × 2: the strides decide where elements are, so they stay.
        let mut tensor = tensor2(&[[1f32, 2., 3.], [4., 5., 6.]]);
        unsafe { tensor.set_geometry_unchecked(&[3, 2], &[1, 3]) };
        let before: Vec<isize> = tensor.strides().into();
        with_natural_strides(&mut tensor).unwrap();
        assert_eq!(
            tensor.strides(),
            &*before,
            "strides that move elements must stay"
        );
    }

    #[test]
    fn the_wrapped_axis_op_answers_as_the_axis_op_does() {
        let input = tensor2(&[[1f32, 2.], [3., 4.]]);
        let op = AxisOp::Add(0);
        let ctx = EvalContext::out_of_plan();
        let plain = op.eval(&ctx, tvec!(input.clone().into_tvalue())).unwrap();
        let wrapped = NaturalAxisOp(op)
            .eval(&ctx, tvec!(input.into_tvalue()))
            .unwrap();
        assert_eq!(plain[0].shape(), wrapped[0].shape());
        assert_eq!(values(&plain[0]), values(&wrapped[0]));
        assert!(is_natural(&wrapped[0]));
    }

    #[test]
    fn max_and_min_over_a_middle_axis_match_tract_bit_for_bit() {
        // [2, 5, 3] with negatives, ties, infinities and a NaN, reduced over each axis.
        let data: Vec<f32> = (0..30)
            .map(|i| match i {
                7 => f32::NEG_INFINITY,
                11 => f32::INFINITY,
                13 => f32::NAN,
                _ => ((i * 37) % 11) as f32 - 5.0,
            })
            .collect();
        let input = Tensor::from_shape(&[2, 5, 3], &data).unwrap();
        let ctx = EvalContext::out_of_plan();
        for reducer in [Reducer::Max, Reducer::Min] {
            for axis in 0..3 {
                let reduce = Reduce {
                    axes: tvec!(axis),
                    reducer,
                };
                let expected = reduce
                    .eval(&ctx, tvec!(input.clone().into_tvalue()))
                    .unwrap();
                let fast = AxisExtremum::for_reduce(&reduce).unwrap();
                let got = fast.eval(&ctx, tvec!(input.clone().into_tvalue())).unwrap();
                assert_eq!(expected[0].shape(), got[0].shape());
                let bits =
                    |t: &Tensor| -> Vec<u32> { values(t).iter().map(|v| v.to_bits()).collect() };
                assert_eq!(
                    bits(&expected[0]),
                    bits(&got[0]),
                    "{reducer:?} over axis {axis}"
                );
                assert_eq!(fast.reduce_f32(&input).is_some(), axis < 2);
            }
        }
    }

    #[test]
    fn other_reductions_keep_tract_s_op() {
        assert!(AxisExtremum::for_reduce(&Reduce {
            axes: tvec!(1),
            reducer: Reducer::Sum
        })
        .is_none());
        assert!(AxisExtremum::for_reduce(&Reduce {
            axes: tvec!(0, 1),
            reducer: Reducer::Max
        })
        .is_none());
    }
}
