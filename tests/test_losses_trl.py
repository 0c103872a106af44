"""Our two-way sigmoid DPO loss against TRL's DPOTrainer on the same log-probs (TRL is a test
oracle only: a dev dependency, never imported by mmbench)."""

import types

import pytest
import torch

from mmbench.trainers.losses import dpo_sigmoid
from mmbench.world.tinyllava import train_tokenizer

trl = pytest.importorskip("trl")


class _LogProbModel(torch.nn.Module):
    """Stands in for the policy: returns fixed per-token log-probs; every other output TRL
    reads for its logging is zero."""

    def __init__(self, per_token):
        super().__init__()
        self.per_token = per_token

    def forward(self, **_):
        per_token = self.per_token

        class Outputs(types.SimpleNamespace):
            def __getattr__(self, name):
                return torch.zeros_like(per_token, dtype=torch.bool if name.startswith("is_") else per_token.dtype)

        return Outputs(log_probs=per_token, aux_loss=None)


@pytest.mark.parametrize("beta", [0.1, 0.3])
def test_sigmoid_loss_matches_trl(tmp_path, beta):
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = train_tokenizer(["a b c d e"])
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=tok.pad_token_id)
    # TRL without PEFT reloads a missing reference by name, so pass one explicitly.
    trainer = trl.DPOTrainer(model=LlamaForCausalLM(config), ref_model=LlamaForCausalLM(config),
                             args=trl.DPOConfig(output_dir=str(tmp_path), beta=beta, loss_type=["sigmoid"],
                                                report_to=[], use_cpu=True, bf16=False),
                             train_dataset=Dataset.from_dict({"prompt": ["a b"], "chosen": ["c"], "rejected": ["d"]}),
                             processing_class=tok)
    trainer.precompute_ref_logps = True  # feed the reference log-probs directly
    g = torch.Generator().manual_seed(int(beta * 10))
    batch, length = 4, 5
    per_token = -torch.rand(2 * batch, length, generator=g) * 3  # rows: [chosen; rejected]
    ref_chosen, ref_rejected = -torch.rand(batch, generator=g) * 10, -torch.rand(batch, generator=g) * 10
    inputs = {"input_ids": torch.ones(2 * batch, length + 1, dtype=torch.long),
              "attention_mask": torch.ones(2 * batch, length + 1, dtype=torch.long),
              "completion_mask": torch.ones(2 * batch, length + 1, dtype=torch.long),
              "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    theirs = trainer._compute_loss(_LogProbModel(per_token), inputs, return_outputs=False)
    policy = per_token.sum(1)
    ours = dpo_sigmoid(policy[:batch], policy[batch:], ref_chosen, ref_rejected, beta).losses.mean()
    assert float(ours) == pytest.approx(float(theirs), abs=1e-6)
