import sys, json, torch
from spikeplastic.meta.config import TrainConfig
from spikeplastic.meta.trainer import Trainer
from spikeplastic.meta.build import build_task, build_model
name = sys.argv[1]; seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
cfg = TrainConfig(task="pattern50", model="snn-stdp", episodes=6000, batch=8, lr=1e-3, seed=seed, progress=False,
                  out=f"/work/diag/var/{name}_s{seed}", log_every=1)
torch.manual_seed(seed)
task = build_task(cfg); m = build_model(cfg, task)
for p in m.network.projs["hidden_to_hidden"].weight.parameters(): p.requires_grad_(False)
tr = Trainer(cfg, task=task, model=m); tr.run(overwrite=True)
