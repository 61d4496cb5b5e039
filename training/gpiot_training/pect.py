"""Per-role LoRA paths and PECT (parameter-efficient co-tuning) on one frozen llama base.

Every targeted linear layer W of every block becomes

    y = W x + s · B_role A_role x  (+ w_role · s_c · B_c A_c x   where the shared path is, i.e. beside W_k and W_v)

with s = alpha / r, s_c = alpha_c / r_c, w_td = λ and w_cg = 1 − λ, so that for TD and CG

    K1 = (W_k + B1 A1 + λ B_c A_c) X,    K2 = (W_k + B2 A2 + (1 − λ) B_c A_c) X.

Beside each block's FFN, two small SwiGLU projections feed each path from the other:

    x1' = x1 + F(x1) + γ · L_td←cg(x2),    x2' = x2 + F(x2) + γ · L_cg←td(x1)

(x1, x2: the post-norm FFN inputs of the TD and CG streams). The cross projections need both
streams of a sample, so with γ > 0 every sample runs twice ("dual stream": the TD stream and the CG
stream), and its loss comes from the stream of its own role. With γ = 0 (or in mode "lora") each
sample runs once, on its own role's path: mixed batches are routed per sample.

Plain LoRA (mode "lora") is the same module with no shared path and no cross projections.
"""

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")
ALL_TARGETS = ATTENTION_TARGETS + MLP_TARGETS


@dataclass
class PectConfig:
    mode: str = "pect"
    roles: tuple[str, ...] = ("td", "cg")
    rank: int = 16
    alpha: float = 32.0
    targets: tuple[str, ...] = ATTENTION_TARGETS
    dropout: float = 0.05
    shared_rank: int = 16
    shared_alpha: float = 32.0
    shared_targets: tuple[str, ...] = ("k_proj", "v_proj")
    lam: float = 0.5
    gamma: float = 0.0
    cross_dim: int = 32
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.roles = tuple(self.roles)
        self.targets = tuple(self.targets)
        self.shared_targets = tuple(self.shared_targets)
        if self.mode not in ("pect", "lora"):
            raise ValueError(f'mode must be "pect" or "lora", not "{self.mode}"')
        for target in self.targets + self.shared_targets:
            if target not in ALL_TARGETS:
                raise ValueError(f'unknown target module "{target}"; targets are {", ".join(ALL_TARGETS)}')
        if self.rank <= 0:
            raise ValueError("rank must be positive")
        if self.mode == "pect":
            if set(self.roles) != {"td", "cg"}:
                raise ValueError("PECT co-tunes exactly TD and CG (RT runs on the bare base, as in the paper); train RT with --mode lora")
            if not 0.0 <= self.lam <= 1.0:
                raise ValueError("lambda must be between 0 and 1")
            if self.gamma < 0:
                raise ValueError("gamma must be 0 or more")
            if self.shared_rank < 0 or self.cross_dim <= 0:
                raise ValueError("the shared rank must be 0 or more and the cross-projection width positive")
            for target in self.shared_targets:
                if target not in ("k_proj", "v_proj"):
                    raise ValueError("the shared path sits beside W_k and W_v only (k_proj, v_proj)")
        else:
            self.shared_rank = 0
            self.gamma = 0.0

    @property
    def has_shared(self) -> bool:
        return self.mode == "pect" and self.shared_rank > 0 and bool(self.shared_targets)

    @property
    def has_cross(self) -> bool:
        return self.mode == "pect" and self.gamma > 0

    def shared_weight(self, role: str) -> float:
        return {"td": self.lam, "cg": 1.0 - self.lam}.get(role, 0.0)

    def to_json(self) -> dict:
        data = asdict(self)
        data["roles"] = list(self.roles)
        data["targets"] = list(self.targets)
        data["shared_targets"] = list(self.shared_targets)
        return data


class Routing:
    """Which path each row of the current batch takes. Set by PectModel around every forward pass."""

    def __init__(self, roles: tuple[str, ...]):
        self.roles = roles
        self.role_ids: torch.Tensor | None = None
        self.rows_by_role: list[torch.Tensor | None] = []
        self.stream_size = 0  # dual stream: rows [0, n) are the TD stream, [n, 2n) the CG stream
        self.cross = True

    def set(self, role_ids: torch.Tensor, stream_size: int = 0) -> None:
        self.role_ids = role_ids
        self.stream_size = stream_size
        self.rows_by_role = []
        for index in range(len(self.roles)):
            rows = (role_ids == index).nonzero(as_tuple=True)[0]
            self.rows_by_role.append(rows if rows.numel() else None)

    def clear(self) -> None:
        self.role_ids = None
        self.rows_by_role = []
        self.stream_size = 0


class RoutedLoraLinear(nn.Module):
    def __init__(
        self, base: nn.Module, in_features: int, out_features: int, config: PectConfig, routing: Routing, role_path: bool, shared_path: bool
    ):
        super().__init__()
        self.base = base
        self.routing = routing
        self.in_features = in_features
        self.out_features = out_features
        self.scale = config.alpha / config.rank
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.role_path = role_path
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        if role_path:
            for role in config.roles:
                self.lora_A[role] = nn.Parameter(torch.empty(config.rank, in_features))
                self.lora_B[role] = nn.Parameter(torch.zeros(out_features, config.rank))
                nn.init.kaiming_uniform_(self.lora_A[role], a=math.sqrt(5))
        self.shared_path = shared_path
        if shared_path:
            self.shared_scale = config.shared_alpha / config.shared_rank
            self.shared_A = nn.Parameter(torch.empty(config.shared_rank, in_features))
            self.shared_B = nn.Parameter(torch.zeros(out_features, config.shared_rank))
            nn.init.kaiming_uniform_(self.shared_A, a=math.sqrt(5))
            self.register_buffer("shared_weights", torch.tensor([config.shared_weight(role) for role in config.roles]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        routing = self.routing
        if routing.role_ids is None:
            return y
        dtype = self.lora_A[next(iter(self.lora_A))].dtype if self.role_path else self.shared_A.dtype
        xd = self.dropout(x).to(dtype)
        delta = torch.zeros(y.shape, dtype=dtype, device=y.device)
        if self.role_path:
            for index, role in enumerate(routing.roles):
                rows = routing.rows_by_role[index]
                if rows is None:
                    continue
                part = (xd[rows] @ self.lora_A[role].T) @ self.lora_B[role].T
                delta = delta.index_add(0, rows, (part * self.scale).to(delta.dtype))
        if self.shared_path:
            weights = self.shared_weights[routing.role_ids].to(dtype).view(-1, *([1] * (x.dim() - 1)))
            delta = delta + weights * self.shared_scale * ((xd @ self.shared_A.T) @ self.shared_B.T)
        return y + delta.to(y.dtype)

    def folded(self, role: str, config: PectConfig) -> tuple[torch.Tensor, torch.Tensor]:
        """(A', B') of rank r + r_c with B' A' equal to this role's whole update (scales included)."""
        rank = config.rank + (config.shared_rank if config.has_shared else 0)
        a = torch.zeros(rank, self.in_features)
        b = torch.zeros(self.out_features, rank)
        if self.role_path:
            a[: config.rank] = self.lora_A[role].detach().float().cpu()
            b[:, : config.rank] = self.scale * self.lora_B[role].detach().float().cpu()
        if self.shared_path:
            a[config.rank :] = self.shared_A.detach().float().cpu()
            b[:, config.rank :] = config.shared_weight(role) * self.shared_scale * self.shared_B.detach().float().cpu()
        return a, b


class SwiGLU(nn.Module):
    """down(silu(gate x) * up x); down starts at zero so a new projection changes nothing."""

    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.gate = nn.Linear(hidden, inner, bias=False)
        self.up = nn.Linear(hidden, inner, bias=False)
        self.down = nn.Linear(inner, hidden, bias=False)
        nn.init.zeros_(self.down.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class CrossProjectedMLP(nn.Module):
    def __init__(self, mlp: nn.Module, hidden: int, config: PectConfig, routing: Routing):
        super().__init__()
        self.mlp = mlp
        self.routing = routing
        self.gamma = config.gamma
        self.td_from_cg = SwiGLU(hidden, config.cross_dim)
        self.cg_from_td = SwiGLU(hidden, config.cross_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(x)
        n = self.routing.stream_size
        if not n or not self.routing.cross:
            return y
        dtype = self.td_from_cg.gate.weight.dtype
        td, cg = x[:n].to(dtype), x[n:].to(dtype)
        cross = torch.cat([self.td_from_cg(cg), self.cg_from_td(td)]) * self.gamma
        return y + cross.to(y.dtype)


class PectModel(nn.Module):
    """A frozen causal llama with routed LoRA paths (and, in PECT, the shared path and cross projections)."""

    def __init__(self, model: nn.Module, config: PectConfig):
        super().__init__()
        self.model = model
        self.config = config
        self.routing = Routing(config.roles)
        for param in model.parameters():
            param.requires_grad_(False)
        self.lora_modules: dict[str, RoutedLoraLinear] = {}
        layers = model.model.layers
        hidden = model.config.hidden_size
        for index, layer in enumerate(layers):
            for parent_name, parent in (("self_attn", layer.self_attn), ("mlp", layer.mlp)):
                for name in ATTENTION_TARGETS if parent_name == "self_attn" else MLP_TARGETS:
                    role_path = name in config.targets
                    shared_path = config.has_shared and name in config.shared_targets
                    if not (role_path or shared_path):
                        continue
                    base = getattr(parent, name)
                    wrapped = RoutedLoraLinear(base, base.in_features, base.out_features, config, self.routing, role_path, shared_path)
                    setattr(parent, name, wrapped)
                    self.lora_modules[f"model.layers.{index}.{parent_name}.{name}"] = wrapped
            if config.has_cross:
                layer.mlp = CrossProjectedMLP(layer.mlp, hidden, config, self.routing)
        device = model.model.embed_tokens.weight.device
        for param in self.trainable_parameters():
            param.data = param.data.float().to(device)
        for module in self.lora_modules.values():
            if module.shared_path:
                module.shared_weights = module.shared_weights.to(device)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [param for param in self.model.parameters() if param.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {name: param.detach().float().cpu().contiguous() for name, param in self.model.named_parameters() if param.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        missing = [name for name, param in params.items() if param.requires_grad and name not in state]
        unexpected = [name for name in state if name not in params or not params[name].requires_grad]
        if missing or unexpected:
            raise ValueError(f"checkpoint does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        with torch.no_grad():
            for name, value in state.items():
                if params[name].shape != value.shape:
                    raise ValueError(
                        f"checkpoint tensor {name} has shape {tuple(value.shape)}, the model's has {tuple(params[name].shape)}"
                    )
                params[name].copy_(value.to(params[name].dtype))

    def role_index(self, role: str) -> int:
        return self.config.roles.index(role)

    def rows_for(self, sample_roles: list[str], dual: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Role id of every row, the row each sample's loss is read from, and the stream size (0: single stream)."""
        n = len(sample_roles)
        if dual:
            role_ids = torch.tensor([self.role_index("td")] * n + [self.role_index("cg")] * n)
            loss_rows = torch.tensor([i if role == "td" else n + i for i, role in enumerate(sample_roles)])
            return role_ids, loss_rows, n
        role_ids = torch.tensor([self.role_index(role) for role in sample_roles])
        return role_ids, torch.arange(n), 0

    def forward_hidden(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sample_roles: list[str],
        cross: bool | None = None,
        past_key_values=None,
        use_cache: bool = False,
    ):
        """Hidden states of the rows that carry each sample's loss (and the model output, for caching)."""
        dual = self.config.has_cross and (cross if cross is not None else True)
        role_ids, loss_rows, stream = self.rows_for(sample_roles, dual)
        device = input_ids.device
        if dual:
            input_ids = torch.cat([input_ids, input_ids])
            attention_mask = torch.cat([attention_mask, attention_mask])
        # The routing stays set after the forward pass: gradient checkpointing runs the forward again
        # during backward, and it must take the same paths. The next forward pass replaces it.
        self.routing.set(role_ids.to(device), stream)
        output = self.model.model(input_ids=input_ids, attention_mask=attention_mask, past_key_values=past_key_values, use_cache=use_cache)
        return output.last_hidden_state[loss_rows.to(device)], output

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(hidden).float()

    def loss(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        sample_roles: list[str],
        cross: bool | None = None,
        keep_graph: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean cross-entropy over answer tokens, with the per-sample sums (detached unless keep_graph) and token counts."""
        hidden, _ = self.forward_hidden(input_ids, attention_mask, sample_roles, cross)
        logits = self.logits(hidden[:, :-1])
        targets = labels[:, 1:]
        per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="none").view(
            targets.shape
        )
        mask = targets != -100
        sums = (per_token * mask).sum(dim=1)
        counts = mask.sum(dim=1)
        return sums.sum() / counts.sum().clamp(min=1), (sums if keep_graph else sums.detach()), counts.detach()

    def parameter_counts(self) -> dict[str, int]:
        total = sum(param.numel() for param in self.model.parameters())
        trainable = sum(param.numel() for param in self.trainable_parameters())
        return {"total": total, "trainable": trainable, "frozen": total - trainable}


def count_trainable_for_shape(
    config: PectConfig, hidden: int, layers: int, heads: int, kv_heads: int, ffn: int, vocab: int, tied: bool = False
) -> dict[str, float]:
    """Trainable and total parameter counts of a llama of this shape, computed without building it."""
    head_dim = hidden // heads
    shapes = {
        "q_proj": (hidden, heads * head_dim),
        "k_proj": (hidden, kv_heads * head_dim),
        "v_proj": (hidden, kv_heads * head_dim),
        "o_proj": (heads * head_dim, hidden),
        "gate_proj": (hidden, ffn),
        "up_proj": (hidden, ffn),
        "down_proj": (ffn, hidden),
    }
    base_per_layer = sum(i * o for i, o in shapes.values()) + 2 * hidden
    base = layers * base_per_layer + vocab * hidden * (1 if tied else 2) + hidden
    role_paths = sum(config.rank * (shapes[t][0] + shapes[t][1]) for t in config.targets) * len(config.roles)
    shared = sum(config.shared_rank * (shapes[t][0] + shapes[t][1]) for t in config.shared_targets) if config.has_shared else 0
    cross = 2 * 3 * hidden * config.cross_dim if config.has_cross else 0
    trainable = layers * (role_paths + shared + cross)
    export_rank = config.rank + (config.shared_rank if config.has_shared else 0)
    export_targets = set(config.targets) | (set(config.shared_targets) if config.has_shared else set())
    per_role_export = layers * sum(export_rank * (shapes[t][0] + shapes[t][1]) for t in export_targets)
    return {
        "base": base,
        "trainable": trainable,
        "share": trainable / (base + trainable),
        "per_role_export": per_role_export,
        "cross": layers * cross,
        "shared": layers * shared,
    }
