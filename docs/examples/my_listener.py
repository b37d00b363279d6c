# my_listener.py
import json

from framegru import hookimpl


class JsonLog:
    """Every 10th step's loss and every evaluation, as JSON lines in run.dir/my_log.jsonl."""

    def __init__(self, *, run):
        self.path = run.dir / "my_log.jsonl"  # opened at the start: a run that fails to build leaves nothing

    @hookimpl
    def framegru_run_start(self, step):
        self.file = open(self.path, "a")  # where W&B would call wandb.init(...)

    @hookimpl
    def framegru_run_step(self, step, loss):
        if step % 10 == 0:
            self.file.write(json.dumps({"step": step, "loss": loss}) + "\n")

    @hookimpl
    def framegru_run_evaluated(self, step, metrics):
        self.file.write(json.dumps({"step": step, "eval": metrics}) + "\n")

    @hookimpl
    def framegru_run_finish(self, error):
        self.file.close()


@hookimpl
def framegru_register_listeners(register):
    register("json_log", JsonLog)
