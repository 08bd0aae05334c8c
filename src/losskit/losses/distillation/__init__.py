"""The distillation family: fused linear and logit distillation losses (KL, reverse KL, JSD)."""
