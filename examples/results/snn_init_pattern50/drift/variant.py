import sys, json
from spikeplastic.meta.config import TrainConfig
from spikeplastic.meta.trainer import Trainer
name, kw = sys.argv[1], json.loads(sys.argv[2])
d = dict(task="pattern50", model="snn-stdp", episodes=6000, batch=8, lr=1e-3, seed=0, progress=False,
         out=f"/work/diag/var/{name}", checkpoint_every=500, log_every=1)
d.update(kw)
Trainer(TrainConfig(**d)).run(resume=False, overwrite=True)
