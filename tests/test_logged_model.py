"""The model a training run logs to MLflow is the best checkpoint (the one its metrics describe),
not the last epoch's weights: `mlflow models serve` must serve what `eval_top1` measured."""

from __future__ import annotations

import mlflow
import mlflow.pytorch
import torch

from helpers import make_pickles
from skelact.engine.evaluate import load_model
from skelact.engine.recipes import TrainConfig
from skelact.engine.train import train
from skelact.models.checkpoint import read_checkpoint


def test_logged_model_is_best_pt_not_the_last_epoch(tmp_path):
    train_pkl, val_pkl = make_pickles(tmp_path / "data", num_train=32, num_val=16)
    out, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    # a high learning rate makes validation accuracy move around, so the best epoch is an early
    # one (asserted below, or this test would not tell best.pt and last.pt apart)
    result = train(TrainConfig(
        model="tscnn", train_path=str(train_pkl), val_path=str(val_pkl), out_dir=str(out),
        epochs=6, batch_size=8, lr=0.05, scale_lr=False, clip_len=16, val_interval=1,
        quiet=True, track=True, tracking_uri=uri, experiment="logged-model", seed=0,
    ))  # fmt: skip
    assert result.best_epoch < 6, "the recipe must end past its best epoch for this test"
    best, last = read_checkpoint(out / "best.pt"), read_checkpoint(out / "last.pt")
    assert any(not torch.equal(best["state_dict"][k], last["state_dict"][k])
               for k in best["state_dict"])  # fmt: skip

    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name("logged-model")
    models = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list"
    )
    assert len(models) == 1 and models[0].source_run_id == result.mlflow_run_id
    served = mlflow.pytorch.load_model(models[0].model_uri)
    state = served.state_dict()
    assert set(state) == set(best["state_dict"])
    assert all(torch.equal(state[k], best["state_dict"][k]) for k in state)

    x = torch.randn(2, 3, 16, 25, 2, generator=torch.Generator().manual_seed(0))
    from_best, _, _ = load_model(out / "best.pt")
    from_last, _, _ = load_model(out / "last.pt")
    with torch.no_grad():
        torch.testing.assert_close(served(x), from_best.eval()(x))
        assert not torch.allclose(served(x), from_last.eval()(x))
