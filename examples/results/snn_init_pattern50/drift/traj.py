import sys, json, torch
from spikeplastic.meta.config import TrainConfig
from spikeplastic.meta.trainer import Trainer
tr = Trainer(TrainConfig(task="pattern50", model="snn-stdp", episodes=6000, batch=8, lr=1e-3, seed=0, progress=False))
net = tr.model.network; rec = net.projs["hidden_to_hidden"]; pop = net.pops["hidden"]
L = M = 0.0
for k in range(1, 6001):
    r = tr.step(); L += r["loss"]; M += r["metric"]
    if k % 250 == 0:
        rule = rec.rule
        with torch.no_grad():
            a = rec.alpha(); w = rec.weight()
            print(k, f"loss {L/250:.2f} err {M/250:.3f}", "A+ %.4f A- %.4f tau+ %.3f tau- %.3f decay %.4f" % (float(rule.a_plus()), float(rule.a_minus()), float(rule.tau_plus()), float(rule.tau_minus()), float(rec.decay())),
                  "bias %.3f" % float(pop.params().bias.mean()), "alpha %.4f±%.4f" % (float(a.mean()), float(a.std())),
                  "w %.4f±%.4f" % (float(w.mean()), float(w.std())), "gain %.3f rb %.3f" % (float(tr.model.readout_gain.mean()), float(tr.model.readout_bias.mean())), flush=True)
        L = M = 0.0
