"""The fragmenter (imitation_fn.data.fragments): windows stay inside one episode, imitation's weights, supply checks."""

import warnings

import pytest
import torch

from imitation_fn.core import random
from imitation_fn.data import fragments
from imitation_fn.data.types import TrajectoryWithRew


def _traj(rews: list[float], terminal: bool = False, offset: float = 0.0) -> TrajectoryWithRew:
    n = len(rews)
    obs = torch.arange(n + 1, dtype=torch.float32)[:, None].expand(n + 1, 3) + offset
    return TrajectoryWithRew(obs=obs.clone(), acts=torch.zeros(n, 1), rews=torch.tensor(rews), terminal=terminal)


def test_random_fragments_stay_inside_one_episode_and_have_the_right_shapes() -> None:
    trajs = [
        _traj([float(i) for i in range(12)], terminal=True),
        _traj([100.0 + i for i in range(3)]),
        _traj([200.0 + i for i in range(7)], offset=1000.0),
    ]
    pool = fragments.pool_from_trajectories(trajs, fragment_length=4)
    frags = fragments.random_fragments(random.key(0), pool, fragment_length=4, num_pairs=300)
    assert frags.obs.shape == (300, 2, 4, 3) and frags.acts.shape == (300, 2, 4, 1) and frags.rews.shape == (300, 2, 4)
    flat = frags.rews.reshape(-1, 4)
    assert torch.all(flat[:, 1:] - flat[:, :-1] == 1)  # consecutive steps of one trajectory
    assert not torch.any((flat >= 100) & (flat < 200))  # the 3-step trajectory is too short: never used
    # next_obs is the following observation; dones only at the true terminal step of the terminal trajectory.
    torch.testing.assert_close(frags.next_obs[..., 0], frags.obs[..., 0] + 1)
    assert torch.equal(frags.dones.reshape(-1, 4), (flat == 11).reshape(-1, 4))
    # imitation picks a trajectory with probability ∝ length, then a uniform start: 12 vs 7 steps.
    share_long = (flat[:, 0] < 100).float().mean()
    assert abs(float(share_long) - 12 / 19) < 0.06
    starts = flat[flat[:, 0] < 100][:, 0]
    assert set(starts.long().tolist()) == set(range(9))  # every start 0..12-4 occurs


def test_windows_never_cross_episode_ends_in_agent_streams() -> None:
    ends = torch.zeros(1, 10, dtype=torch.bool)
    ends[0, 3] = True  # one stream: an episode of 4 steps, then one of 6
    pool = fragments.Pool(
        obs=torch.zeros(1, 10, 3),
        acts=torch.zeros(1, 10, 1),
        next_obs=torch.zeros(1, 10, 3),
        rews=torch.arange(10.0)[None],
        terminal=ends,
        ends=ends,
        valid=torch.ones(1, 10, dtype=torch.bool),
        weight=torch.ones(1),
    )
    w = fragments.window_weights(pool, 3)
    # Starts 0, 1 end at step 2, 3 (allowed: an episode may end at the window's last step); 2, 3 cross.
    assert w[0].tolist() == [1, 1, 0, 0, 1, 1, 1, 1]


def test_fragment_supply_warnings_and_errors() -> None:
    with pytest.raises(ValueError, match="No trajectories are long enough"):
        fragments.check_fragment_supply([3, 4], 5, 1, 10)
    with pytest.warns(UserWarning, match="Discarded 1 out of 2"):
        fragments.check_fragment_supply([3, 400], 5, 1, 10)
    with pytest.warns(UserWarning, match="Fewer transitions available"):
        fragments.check_fragment_supply([10], 5, 2, 10)
    with pytest.warns(UserWarning, match="Samples will contain 20 transitions in total and only 50"):
        fragments.check_fragment_supply([50], 5, 2, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fragments.check_fragment_supply([50], 5, 2, 0)  # warning_threshold 0: silent
        fragments.check_fragment_supply([500], 5, 2, 10)
