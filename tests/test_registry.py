"""Plugin discovery through real entry points, references, and the errors users see."""

import textwrap

import pytest

from mm_eureka_plugin import registry
from mm_eureka_plugin.cli import main
from mm_eureka_plugin.config import load_recipe

LOSS_PLUGIN = '''
from mm_eureka_plugin import hookimpl


def make_scaled_loss(scale: float = 1.0):
    """Sum of log-probs times advantages, scaled (a third-party test loss)."""
    def loss(log_probs, old_log_probs, advantages, action_mask, *, num_tokens=None, num_sequences=None):
        return -(scale * log_probs * advantages * action_mask).sum(), {}
    return loss


@hookimpl
def mm_eureka_policy_losses():
    return {NAME: make_scaled_loss}
'''


def install_dist(root, dist_name, package, source, entry_name="plugin"):
    """Write a throwaway distribution (package + dist-info with an mm_eureka entry point) under root."""
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    (root / package / "plugin.py").write_text(textwrap.dedent(source))
    info = root / f"{dist_name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[mm_eureka]\n{entry_name} = {package}.plugin\n")


@pytest.fixture
def site(tmp_path, monkeypatch, fresh_registry):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_register_through_the_projects_entry_point(fresh_registry):
    cpgd = fresh_registry.registry().get("policy_loss", "cpgd")
    assert cpgd.distribution == "mm-eureka-plugin"
    assert registry.names("advantage_weight") == ["clip_filter_like", "equal", "std"]


def test_third_party_component_is_selectable_by_name(site, capsys, tmp_path):
    install_dist(site, "their-losses", "their_losses", LOSS_PLUGIN.replace("NAME", "'scaled'"))
    registry.reload()
    assert "scaled" in registry.names("policy_loss")
    loss_fn = registry.resolve("policy_loss", "scaled", scale=2.0)
    import torch

    loss, _ = loss_fn(torch.ones(1, 2), torch.ones(1, 2), torch.tensor([1.5]), torch.ones(1, 2))
    assert loss.item() == pytest.approx(-6.0)

    assert main(["plugins"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "scaled" in x)
    assert "[their-losses]" in line and "a third-party test loss" in line

    recipe = tmp_path / "r.yaml"
    recipe.write_text("plugin:\n  policy_loss: {name: scaled, scale: 0.5}\n")
    assert load_recipe(recipe).validate()["policy_loss"] is not None


def test_a_plugin_that_fails_to_import_is_listed_not_fatal(site, capsys):
    install_dist(site, "broken-plugin", "broken_plugin", "import no_such_module_anywhere\n")
    install_dist(
        site,
        "typo-plugin",
        "typo_plugin",
        "from mm_eureka_plugin import hookimpl\n@hookimpl\ndef mm_eureka_reward():\n    return {}\n",
    )
    registry.reload()
    errors = {e.distribution: e.error for e in registry.registry().load_errors}
    assert "no_such_module_anywhere" in errors["broken-plugin"]
    assert "mm_eureka_reward" in errors["typo-plugin"]
    assert "cpgd" in registry.names("policy_loss")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "failed to load" in out and "broken-plugin" in out and "ModuleNotFoundError" in out


def test_two_distributions_registering_one_name_is_an_error_naming_both(site):
    install_dist(site, "clashing-losses", "clashing_losses", LOSS_PLUGIN.replace("NAME", "'cpgd'"))
    registry.reload()
    with pytest.raises(registry.ComponentError) as err:
        registry.registry()
    assert "mm-eureka-plugin" in str(err.value) and "clashing-losses" in str(err.value)


def test_references_to_modules_and_files(site, tmp_path):
    install_dist(site, "ref-losses", "ref_losses", LOSS_PLUGIN.replace("NAME", "'ref_scaled'"))
    assert callable(registry.resolve("policy_loss", "ref_losses.plugin:make_scaled_loss", scale=1.0))
    script = tmp_path / "my_weight.py"
    script.write_text("import torch\ndef make(value: float = 2.0):\n    return lambda r: torch.full_like(r, value)\n")
    weight = registry.resolve("advantage_weight", f"{script}:make", value=4.0)
    import torch

    assert weight(torch.zeros(2, 2)).tolist() == [[4.0, 4.0], [4.0, 4.0]]
    with pytest.raises(registry.ComponentError, match="does not exist"):
        registry.resolve("advantage_weight", f"{tmp_path}/nope.py:make")
    with pytest.raises(registry.ComponentError, match="has no attribute 'missing'"):
        registry.resolve("advantage_weight", f"{script}:missing")
    with pytest.raises(registry.ComponentError, match="cannot import module"):
        registry.resolve("advantage_weight", "no_such_pkg.mod:make")


def test_unknown_names_kinds_and_parameters_list_the_valid_ones(fresh_registry):
    with pytest.raises(registry.ComponentError, match="Valid names: cpgd, ppo"):
        registry.resolve("policy_loss", "cpdg")
    with pytest.raises(registry.ComponentError, match="Valid kinds: reward, policy_loss"):
        registry.names("loss")
    with pytest.raises(registry.ComponentError, match="unknown parameter 'eps'.*clip_eps"):
        registry.resolve("policy_loss", "cpgd", eps=0.2)
    with pytest.raises(registry.ComponentError, match="'drift_coef' of policy_loss 'cpgd' must be float"):
        registry.resolve("policy_loss", "cpgd", drift_coef="0.01")


@pytest.mark.parametrize("ref", ["subprocess:getoutput", "os.path:join", "builtins:eval", "json:loads"])
def test_references_into_the_standard_library_are_refused_before_import(fresh_registry, ref):
    with pytest.raises(registry.ComponentError, match="names Python's standard library, not a component"):
        registry.resolve("reward", ref, cmd="touch /tmp/should-not-exist")


@pytest.mark.parametrize(
    ("kind", "source", "problem"),
    [
        ("reward", "def make():\n    return 'not a reward'\n", "returned a str, which lacks the reward methods"),
        ("data_format", "def make():\n    return lambda path: []\n", "lacks the data_format methods \\(read\\)"),
        (
            "policy_loss",
            "import torch\ndef make():\n    return lambda lp, old, adv, mask, num_tokens=None, num_sequences=None: (torch.tensor(0.0), {})\n",
            "its loss is not a one-element tensor that depends on log_probs",
        ),
        (
            "policy_loss",
            "def make():\n    return lambda lp, old, adv, mask, num_tokens=None, num_sequences=None: lp.sum()\n",
            "it returned Tensor, not \\(loss, metrics\\)",
        ),
        (
            "advantage_weight",
            "import torch\ndef make():\n    return lambda r: torch.ones(3)\n",
            "for rewards of shape \\(2, 3\\) it returned weights of shape \\(3,\\)",
        ),
        ("prm_aggregator", "def make():\n    return lambda scores: 'high'\n", "returned a str, not a number"),
        ("step_splitter", "def make():\n    return lambda text: 1 / 0\n", "raised ZeroDivisionError"),
        (
            "rollout_executor",
            "def make():\n    return lambda prompt: None\n",
            "lacks the rollout_executor methods \\(start\\)",
        ),
        (
            "rollout_executor",
            "class Env:\n    def start(self, prompt):\n        return self\n    def step(self, response):\n"
            "        return {'done': True}\n\ndef make():\n    return Env()\n",
            "its episode's step returned a dict, not a mm_eureka_plugin.rollouts.Turn",
        ),
    ],
)
def test_what_a_factory_returns_must_keep_its_kinds_contract(fresh_registry, tmp_path, kind, source, problem):
    script = tmp_path / "mine.py"
    script.write_text(source)
    with pytest.raises(registry.ComponentError, match=f"{kind} '.*mine.py:make' is not a {kind}: .*{problem}"):
        registry.resolve(kind, f"{script}:make")
