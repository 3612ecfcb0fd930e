//! Three fast paths the optimised plans need and tract 0.23 does not take on its own (the fourth
//! fix, bounds on the `batch` and `seq` symbols, is in `build_plan`).
//!
//! All were found by timing the plans op by op (MiniLM at 30 tokens, the LSTM at 15), and all
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
//!   element at a time, slicing the input anew for each: 29 µs of the LSTM's 187 µs went to its
//!   max-pooling over time (`[1, 15, 192]` → `[1, 1, 192]`). [`AxisExtremum`] reduces such an axis
//!   row by row instead, with tract's own fold (start at `f32::MIN`, keep `acc` when `acc > v`), so
//!   the result is the same bit for bit.
//! - **An add that broadcasts a row.** The attention mask (`[batch, 1, 1, seq]`) is added to every
//!   head's scores (`[batch, heads, seq, seq]`). tract's unicast kernel takes it only when a row
//!   is a multiple of the 16-float vector, so at most sequence lengths the add ran the generic
//!   broadcasting loop: 0.35 ms of MiniLM's 5.5 ms at 30 tokens (0.09 ms now). [`RowBroadcastAdd`] adds the
//!   right row of the smaller operand to each row of the larger one, in the same order of
//!   operations (one `a + b` per element), so the result is the same bit for bit.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{EvalContext, EvalOp, Op, StaticName, TypedOp};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
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
        } else if let Some(op) = node.op_as::<TypedBinOp>() {
            if op.0.name() == "Add" && op.1.is_none() {
                node.op = Box::new(RowBroadcastAdd(op.clone()));
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

/// `a + b` where one operand repeats rows of the other; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RowBroadcastAdd(TypedBinOp);

impl RowBroadcastAdd {
    /// `None` unless both are f32 in C order, of one rank, with the same last axis, and every
    /// other axis of the smaller one is 1 or the larger one's.
    fn add_f32(&self, inputs: &TVec<TValue>) -> Option<Tensor> {
        let [a, b] = inputs.as_slice() else {
            return None;
        };
        if a.datum_type() != f32::datum_type()
            || b.datum_type() != f32::datum_type()
            || a.shape() == b.shape()
        {
            return None; // equal shapes already take tract's in-place path
        }
        // The larger operand is the output's shape; addition commutes.
        let (full, rows) = if b.len() > a.len() { (b, a) } else { (a, b) };
        let (shape, row_shape) = (full.shape(), rows.shape());
        let rank = shape.len();
        if rank < 2
            || row_shape.len() != rank
            || row_shape[rank - 1] != shape[rank - 1]
            || shape.iter().zip(row_shape).any(|(&f, &r)| r != 1 && r != f)
        {
            return None;
        }
        let full_view = full.to_plain_array_view::<f32>().ok()?;
        let rows_view = rows.to_plain_array_view::<f32>().ok()?;
        let (full_data, row_data) = (full_view.as_slice()?, rows_view.as_slice()?);
        let width = shape[rank - 1];
        // How far one step along each leading axis moves in the row operand, in rows: 0 where
        // that operand has a unit axis (it repeats there).
        let mut row_steps = vec![0usize; rank - 1];
        let mut step = 1;
        for axis in (0..rank - 1).rev() {
            if row_shape[axis] != 1 {
                row_steps[axis] = step;
            }
            step *= row_shape[axis];
        }
        let mut out = Vec::with_capacity(full_data.len());
        let mut index = vec![0usize; rank - 1];
        let mut row = 0usize;
        for chunk in full_data.chunks_exact(width) {
            let other = &row_data[row * width..][..width];
            // The operand order of tract's add (`a + b`), so ties in rounding cannot differ.
            if std::ptr::eq(full, a) {
                out.extend(chunk.iter().zip(other).map(|(x, y)| x + y));
            } else {
                out.extend(other.iter().zip(chunk).map(|(x, y)| x + y));
            }
            // Next row index, odometer style, keeping the row operand's row in step.
            for axis in (0..rank - 1).rev() {
                index[axis] += 1;
                row += row_steps[axis];
                if index[axis] < shape[axis] {
                    break;
                }
                row -= row_steps[axis] * index[axis];
                index[axis] = 0;
            }
        }
        Tensor::from_shape(shape, &out).ok()
    }
}

impl Op for RowBroadcastAdd {
    fn name(&self) -> StaticName {
        self.0.name()
    }

    op_as_typed_op!();
}

impl EvalOp for RowBroadcastAdd {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        match self.add_f32(&inputs) {
            Some(out) => Ok(tvec!(out.into_tvalue())),
            None => self.0.eval(ctx, inputs),
        }
    }
}

impl TypedOp for RowBroadcastAdd {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
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

    #[test]
    fn a_row_broadcast_add_matches_tract_bit_for_bit() {
        let ctx = EvalContext::out_of_plan();
        let add = TypedBinOp(Box::new(tract_onnx::tract_core::ops::math::Add), None);
        let fast = RowBroadcastAdd(add.clone());
        let ramp = |n: usize, scale: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * scale).sin() * 1e3).collect()
        };
        // Scores and a mask as in attention, with batch 2 and batch 1, either operand first.
        for (full_shape, row_shape) in [
            ([2usize, 3, 5, 5], [2usize, 1, 1, 5]),
            ([1, 3, 4, 7], [1, 1, 1, 7]),
            ([2, 3, 4, 7], [1, 3, 1, 7]),
        ] {
            let full =
                Tensor::from_shape(&full_shape, &ramp(full_shape.iter().product(), 0.37)).unwrap();
            let rows =
                Tensor::from_shape(&row_shape, &ramp(row_shape.iter().product(), 1.3)).unwrap();
            for (a, b) in [(&full, &rows), (&rows, &full)] {
                let inputs = tvec!(a.clone().into_tvalue(), b.clone().into_tvalue());
                let expected = add.eval(&ctx, inputs.clone()).unwrap();
                assert!(
                    fast.add_f32(&inputs).is_some(),
                    "{full_shape:?} + {row_shape:?}"
                );
                let got = fast.eval(&ctx, inputs).unwrap();
                assert_eq!(expected[0].shape(), got[0].shape());
                let bits =
                    |t: &Tensor| -> Vec<u32> { values(t).iter().map(|v| v.to_bits()).collect() };
                assert_eq!(
                    bits(&expected[0]),
                    bits(&got[0]),
                    "{full_shape:?} + {row_shape:?}"
                );
            }
        }
        // A broadcast along the last axis is tract's to do.
        let column = tvec!(
            Tensor::from_shape(&[2, 3], &ramp(6, 1.0))
                .unwrap()
                .into_tvalue(),
            Tensor::from_shape(&[2, 1], &ramp(2, 1.0))
                .unwrap()
                .into_tvalue()
        );
        assert!(fast.add_f32(&column).is_none());
        assert_eq!(
            values(&fast.eval(&ctx, column.clone()).unwrap()[0]),
            values(&add.eval(&ctx, column).unwrap()[0])
        );
    }
}
