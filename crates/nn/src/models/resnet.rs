//! CIFAR ResNet of the long-tail reference code (`resnet32` of LDAM-DRW, after He et al.
//! 2016 §4.2), depth `6n + 2`.
//!
//! Stem `conv1` 3×3 (C_in → 16, no bias) → `bn1` → ReLU; three stages `layer1..3` of `n`
//! BasicBlocks with widths 16/32/64 and strides 1/2/2; global average pooling; classifier
//! `linear`: `Linear(64, C)` or, for LDAM, `NormedLinear(64, C)`. A BasicBlock is
//! `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, with the option-A shortcut
//! (`x[:, :, ::2, ::2]` zero-padded by planes/4 channels on each side) where the stride is
//! 2 and the identity otherwise. ResNet-32 (`n = 5`) has 464,154 parameters for 10
//! classes. Names: `conv1.weight`, `bn1.*`, `layer{s}.{b}.conv{1,2}.weight`,
//! `layer{s}.{b}.bn{1,2}.*`, `linear.weight`, `linear.bias` (Linear head only).

use crate::error::Result;
use crate::layers::{
    global_avg_pool, shortcut_a, BatchNorm2d, Conv2d, Linear, NormedLinear, ResidualLayers, Then,
};
use crate::store::{Builder, Ctx};
use crate::value::Value;

/// Stage widths of the CIFAR ResNets.
const WIDTHS: [usize; 3] = [16, 32, 64];

/// `conv-BN-ReLU-conv-BN`, plus shortcut, then ReLU.
#[derive(Clone, Debug)]
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    /// `Some(planes)` for the option-A shortcut of a strided block.
    shortcut: Option<usize>,
}

impl BasicBlock {
    fn new(
        b: &mut Builder,
        name: &str,
        inputs: usize,
        planes: usize,
        stride: usize,
    ) -> Result<Self> {
        Ok(Self {
            conv1: Conv2d::new(b, &format!("{name}.conv1"), (inputs, planes), 3, 1, stride)?,
            bn1: BatchNorm2d::new(b, &format!("{name}.bn1"), planes)?,
            conv2: Conv2d::new(b, &format!("{name}.conv2"), (planes, planes), 3, 1, 1)?,
            bn2: BatchNorm2d::new(b, &format!("{name}.bn2"), planes)?,
            shortcut: (stride != 1 || inputs != planes).then_some(planes),
        })
    }

    /// The layers and shortcut as the fused chain takes them.
    fn layers(&self) -> ResidualLayers<'_> {
        let layers = [(&self.conv1, &self.bn1), (&self.conv2, &self.bn2)];
        (layers, self.shortcut.map(|planes| planes / 4))
    }

    /// The block composed from its layers (where the fused chain does not apply).
    fn forward<V: Value>(&self, ctx: &Ctx<V>, x: &V) -> Result<V> {
        let out = self.bn1.forward_conv(ctx, &self.conv1, x, Then::Relu)?;
        let skip = match self.shortcut {
            Some(planes) => shortcut_a(x, planes)?,
            None => x.clone(),
        };
        self.bn2
            .forward_conv(ctx, &self.conv2, &out, Then::AddRelu(&skip))
    }
}

/// The classifier on the pooled 64 features.
#[derive(Clone, Debug)]
enum Head {
    Linear(Linear),
    Normed(NormedLinear),
}

/// CIFAR ResNet-(6n+2).
#[derive(Clone, Debug)]
pub(crate) struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    stages: Vec<Vec<BasicBlock>>,
    head: Head,
}

impl ResNet {
    /// Registers a ResNet with `blocks` BasicBlocks per stage for `channels` input
    /// channels, in the reference code's module order.
    pub(crate) fn new(
        b: &mut Builder,
        channels: usize,
        blocks: usize,
        classes: usize,
        normed: bool,
    ) -> Result<Self> {
        let conv1 = Conv2d::new(b, "conv1", (channels, WIDTHS[0]), 3, 1, 1)?;
        let bn1 = BatchNorm2d::new(b, "bn1", WIDTHS[0])?;
        let mut inputs = WIDTHS[0];
        let mut stages = Vec::with_capacity(WIDTHS.len());
        for (s, &planes) in WIDTHS.iter().enumerate() {
            let first_stride = if s == 0 { 1 } else { 2 };
            let mut stage = Vec::with_capacity(blocks);
            for i in 0..blocks {
                let stride = if i == 0 { first_stride } else { 1 };
                let name = format!("layer{}.{i}", s + 1);
                stage.push(BasicBlock::new(b, &name, inputs, planes, stride)?);
                inputs = planes;
            }
            stages.push(stage);
        }
        let head = if normed {
            Head::Normed(NormedLinear::new(b, "linear", inputs, classes)?)
        } else {
            Head::Linear(Linear::new(b, "linear", inputs, classes)?)
        };
        Ok(Self {
            conv1,
            bn1,
            stages,
            head,
        })
    }

    /// Logits `(N, classes)` of `x: (N, C, H, W)`.
    pub(crate) fn forward<V: Value>(&self, ctx: &Ctx<V>, x: &V) -> Result<V> {
        let mut out = self.bn1.forward_conv(ctx, &self.conv1, x, Then::Relu)?;
        let blocks = self.stages.iter().flatten();
        let layers: Vec<_> = blocks.clone().map(BasicBlock::layers).collect();
        if let Some(fused) = BatchNorm2d::forward_residual_blocks(ctx, &layers, &out)? {
            out = fused;
        } else {
            for block in blocks {
                out = block.forward(ctx, &out)?;
            }
        }
        let pooled = global_avg_pool(&out)?;
        match &self.head {
            Head::Linear(l) => l.forward(ctx, &pooled),
            Head::Normed(l) => l.forward(ctx, &pooled),
        }
    }
}
