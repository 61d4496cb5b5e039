"""PECT math: the K/V outputs follow the formula for λ and 1 − λ, samples are routed to their own
path in a mixed batch, gradients reach only the intended parameters, and the export fold is exact."""

import unittest

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gpiot_training.pect import PectConfig, PectModel, count_trainable_for_shape


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).float().eval()


def fill(module_params, generator: torch.Generator) -> None:
    with torch.no_grad():
        for param in module_params:
            param.copy_(0.1 * torch.randn(param.shape, generator=generator))


class PectMath(unittest.TestCase):
    def setUp(self) -> None:
        self.config = PectConfig(mode="pect", rank=4, alpha=8.0, shared_rank=3, shared_alpha=6.0, lam=0.3, gamma=0.0, dropout=0.0)
        self.model = PectModel(tiny_llama(), self.config)
        generator = torch.Generator().manual_seed(1)
        fill(self.model.trainable_parameters(), generator)

    def test_k_and_v_follow_the_formula_for_lambda_and_one_minus_lambda(self):
        module = self.model.lora_modules["model.layers.0.self_attn.k_proj"]
        with torch.no_grad():
            module.shared_B.copy_(torch.arange(module.shared_B.numel(), dtype=torch.float32).view_as(module.shared_B) / 50.0)
        x = torch.randn(4, 5, 32)
        roles = ["td", "cg", "cg", "td"]
        role_ids, _, _ = self.model.rows_for(roles, dual=False)
        self.model.routing.set(role_ids, 0)
        try:
            out = module(x)
        finally:
            self.model.routing.clear()
        w_k = module.base.weight
        s, s_c = 8.0 / 4, 6.0 / 3
        shared = s_c * (module.shared_B @ module.shared_A)
        for row, role in enumerate(roles):
            weight = 0.3 if role == "td" else 0.7
            expected = x[row] @ (w_k + s * module.lora_B[role] @ module.lora_A[role] + weight * shared).T
            torch.testing.assert_close(out[row], expected, rtol=1e-5, atol=1e-5)

    def test_a_sample_is_routed_to_its_own_path_in_a_mixed_batch(self):
        ids = torch.randint(0, 64, (2, 6))
        mask = torch.ones_like(ids)
        with torch.no_grad():
            mixed, _ = self.model.forward_hidden(ids, mask, ["td", "cg"])
            td_alone, _ = self.model.forward_hidden(ids[:1], mask[:1], ["td"])
            cg_alone, _ = self.model.forward_hidden(ids[1:], mask[1:], ["cg"])
            cg_as_td, _ = self.model.forward_hidden(ids[1:], mask[1:], ["td"])
        torch.testing.assert_close(mixed[0], td_alone[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(mixed[1], cg_alone[0], rtol=1e-4, atol=1e-4)
        self.assertGreater((cg_alone - cg_as_td).abs().max().item(), 1e-3, "the two paths must differ, else routing proves nothing")

    def gradients_for(self, roles: list[str]) -> dict[str, bool]:
        self.model.model.zero_grad(set_to_none=True)
        ids = torch.randint(0, 64, (len(roles), 6))
        labels = ids.clone()
        loss, _, _ = self.model.loss(ids, torch.ones_like(ids), labels, roles)
        loss.backward()
        return {
            name: param.grad is not None and param.grad.abs().sum().item() > 0
            for name, param in self.model.model.named_parameters()
            if param.requires_grad
        }

    def test_gradients_reach_only_the_intended_parameters(self):
        for name, param in self.model.model.named_parameters():
            if not param.requires_grad:
                continue
            self.assertTrue("lora_" in name or "shared_" in name, f"unexpected trainable parameter {name}")
        td = self.gradients_for(["td", "td"])
        self.assertTrue(all(got for name, got in td.items() if ".td" in name), "every TD path learns from TD samples")
        self.assertFalse(any(got for name, got in td.items() if ".cg" in name), "no CG path learns from TD samples")
        self.assertTrue(any(got for name, got in td.items() if "shared_" in name), "the shared path learns from TD samples")
        cg = self.gradients_for(["cg"])
        self.assertFalse(any(got for name, got in cg.items() if ".td" in name), "no TD path learns from CG samples")
        self.assertTrue(all(got for name, got in cg.items() if ".cg" in name))
        for name, param in self.model.model.named_parameters():
            if not param.requires_grad:
                self.assertIsNone(param.grad, f"frozen {name} got a gradient")

    def test_with_lambda_one_cg_gets_nothing_from_the_shared_path(self):
        model = PectModel(tiny_llama(), PectConfig(mode="pect", rank=2, shared_rank=2, lam=1.0, dropout=0.0))
        fill(model.trainable_parameters(), torch.Generator().manual_seed(3))
        model.model.zero_grad(set_to_none=True)
        ids = torch.randint(0, 64, (1, 6))
        loss, _, _ = model.loss(ids, torch.ones_like(ids), ids.clone(), ["cg"])
        loss.backward()
        shared = [param.grad for name, param in model.model.named_parameters() if "shared_" in name]
        self.assertTrue(all(grad is None or grad.abs().sum().item() == 0 for grad in shared))

    def test_the_folded_adapter_equals_each_role_update_exactly(self):
        for key, module in self.model.lora_modules.items():
            for role in ("td", "cg"):
                a, b = module.folded(role, self.config)
                self.assertEqual(a.shape[0], self.config.rank + self.config.shared_rank)
                expected = module.scale * module.lora_B[role] @ module.lora_A[role]
                if module.shared_path:
                    expected = expected + self.config.shared_weight(role) * module.shared_scale * module.shared_B @ module.shared_A
                torch.testing.assert_close(b @ a, expected.detach(), rtol=1e-6, atol=1e-6, msg=f"{key} {role}")


class CrossProjections(unittest.TestCase):
    def setUp(self) -> None:
        self.config = PectConfig(mode="pect", rank=2, shared_rank=2, gamma=0.5, cross_dim=8, dropout=0.0)
        self.model = PectModel(tiny_llama(), self.config)
        fill(self.model.trainable_parameters(), torch.Generator().manual_seed(2))

    def test_each_stream_is_fed_from_the_other_with_weight_gamma(self):
        mlp = self.model.model.model.layers[0].mlp
        x = torch.randn(4, 3, 32)  # rows 0-1: TD stream, rows 2-3: CG stream of the same two samples
        self.model.routing.set(torch.tensor([0, 0, 1, 1]), 2)
        try:
            out = mlp(x)
        finally:
            self.model.routing.clear()
        base = mlp.mlp(x)
        torch.testing.assert_close(out[:2], base[:2] + 0.5 * mlp.td_from_cg(x[2:]), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out[2:], base[2:] + 0.5 * mlp.cg_from_td(x[:2]), rtol=1e-5, atol=1e-5)

    def test_cross_projections_learn_in_the_dual_stream_and_switch_off_for_export(self):
        ids = torch.randint(0, 64, (2, 6))
        mask = torch.ones_like(ids)
        self.model.model.zero_grad(set_to_none=True)
        loss, _, _ = self.model.loss(ids, mask, ids.clone(), ["td", "cg"])
        loss.backward()
        cross = {name: param.grad for name, param in self.model.model.named_parameters() if "td_from_cg" in name or "cg_from_td" in name}
        self.assertTrue(cross and all(grad is not None and grad.abs().sum() > 0 for grad in cross.values()))
        with torch.no_grad():
            with_cross, _ = self.model.forward_hidden(ids, mask, ["td", "cg"], cross=True)
            without, _ = self.model.forward_hidden(ids, mask, ["td", "cg"], cross=False)
            td_only, _ = self.model.forward_hidden(ids[:1], mask[:1], ["td"], cross=False)
        self.assertGreater((with_cross - without).abs().max().item(), 1e-4)
        torch.testing.assert_close(without[0], td_only[0], rtol=1e-4, atol=1e-4)


class GradientCheckpointing(unittest.TestCase):
    def test_checkpointed_layers_give_the_same_gradients(self):
        grads = []
        for checkpointing in (False, True):
            base = tiny_llama()
            base.config.use_cache = False
            if checkpointing:
                base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                base.enable_input_require_grads()
            model = PectModel(base, PectConfig(mode="pect", rank=2, shared_rank=2, gamma=0.5, cross_dim=4, dropout=0.0))
            fill(model.trainable_parameters(), torch.Generator().manual_seed(5))
            model.train()
            ids = torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(6))
            loss, _, _ = model.loss(ids, torch.ones_like(ids), ids.clone(), ["td", "cg"])
            loss.backward()
            grads.append({name: param.grad.clone() for name, param in model.model.named_parameters() if param.requires_grad})
        self.assertEqual(grads[0].keys(), grads[1].keys())
        for name in grads[0]:
            torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


class Counting(unittest.TestCase):
    def test_the_computed_count_matches_the_built_model(self):
        config = PectConfig(mode="pect", rank=4, shared_rank=3, gamma=0.5, cross_dim=8)
        model = PectModel(tiny_llama(), config)
        counts = model.parameter_counts()
        computed = count_trainable_for_shape(config, 32, 2, 4, 2, 48, 64)
        self.assertEqual(computed["trainable"], counts["trainable"])
        self.assertEqual(computed["base"], counts["frozen"])

    def test_bad_settings_are_refused(self):
        for kwargs, message in (
            ({"mode": "pect", "roles": ("td", "rt")}, "exactly TD and CG"),
            ({"mode": "pect", "lam": 1.5}, "lambda"),
            ({"mode": "pect", "shared_targets": ("q_proj",)}, "W_k and W_v"),
            ({"mode": "lora", "targets": ("lm_head",)}, "unknown target"),
        ):
            with self.assertRaisesRegex(ValueError, message):
                PectConfig(**kwargs)


if __name__ == "__main__":
    unittest.main()
