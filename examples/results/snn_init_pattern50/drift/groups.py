import dataclasses, json, sys, torch
from spikeplastic.meta.trainer import Trainer, config_from_checkpoint
from spikeplastic.meta.checkpoint import load_checkpoint
from spikeplastic.meta.episodes import supervised_episode
ck_path, n, K = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ck = load_checkpoint(ck_path); cfg = dataclasses.replace(config_from_checkpoint(ck), out=None)
tr = Trainer(cfg); tr.model.load_state_dict(ck["model_state"]); tr.model.train()
def loss(grad=False):
    gen = torch.Generator().manual_seed(777); tot = met = 0.0
    for _ in range(n // 64):
        with torch.set_grad_enabled(grad):
            r = supervised_episode(tr.model, tr.task, 64, gen, tr.device, None)
        if grad: (r.loss / (n // 64)).backward()
        tot += float(r.loss.detach()) / (n // 64); met += r.metric / (n // 64)
    return tot, met
L0, M0 = loss(True)
g = {nm: p.grad.detach().clone() for nm, p in zip(tr.param_names, tr.params)}
st = ck["optimizer_state"]["state"]
base = {nm: p.detach().clone() for nm, p in zip(tr.param_names, tr.params)}
lr = cfg.lr_at(int(ck["episode"]))
print("loss", L0, "err", M0, "lr", lr)
for i, (nm, p) in enumerate(zip(tr.param_names, tr.params)):
    s = st[i]; t = float(s["step"])
    d = -(s["exp_avg"] / (1 - 0.9 ** t)) / ((s["exp_avg_sq"] / (1 - 0.999 ** t)).sqrt() + cfg.adam_eps)
    with torch.no_grad(): p.copy_(base[nm] + K * lr * d)
    L, M = loss()
    with torch.no_grad(): p.copy_(base[nm] - K * lr * g[nm].sign())
    Ls, Ms = loss()
    with torch.no_grad(): p.copy_(base[nm])
    print(f"{nm}: {K} Adam steps dL {L-L0:+.3f} derr {M-M0:+.4f} | {K} sign(-g) steps dL {Ls-L0:+.3f} derr {Ms-M0:+.4f}", flush=True)
