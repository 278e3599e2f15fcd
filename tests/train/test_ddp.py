"""The joint model trains under torchrun through the one loop (DDP: ranks end identical)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import onefeed

TESTS = Path(__file__).parents[1]
DRIVER = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from joint_toy import make_world, sid_dir
from onefeed.train import joint as tj
out = Path(sys.argv[2])
sid = out.parent / "sid"  # written by the test (joint_toy.sid_dir) before the launch
cfg = tj.load_run_config(None, sys.argv[3:])
state = tj.train_joint(make_world(n_users=8), sid, cfg, out, resume=False)
"""


def test_joint_training_under_torchrun_keeps_ranks_identical(tmp_path, free_port):
    sys.path.insert(0, str(TESTS / "tasks"))
    from joint_toy import sid_dir

    assert sid_dir(tmp_path) == tmp_path / "sid"
    (tmp_path / "driver.py").write_text(DRIVER)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(onefeed.__file__).parents[1]))
    args = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.dropout=0.0",
            "model.max_len=12", "train.max_steps=3", "train.eval_every=100",
            "train.batch_size=8", "train.warmup_steps=1", "train.eval_beam=4",
            "tasks.desc_batch=6", "tasks.id2desc_batch=3", "tasks.valid_search_users=4"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port), str(tmp_path / "driver.py"), str(TESTS / "tasks"),
           str(tmp_path / "run"), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / "run" / "ranks" / f"rank{r}.json").read_text())
             for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["world_size"] == 2
    state = json.loads((tmp_path / "run" / "last" / "state.json").read_text())
    assert state["step"] == 3 and state["history"][-1]["task_loss"].keys() >= {"NRIP", "DESC2ID"}
