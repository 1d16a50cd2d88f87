"""Installing mimic-diffusers must not pull a known-vulnerable requests/urllib3 (torchattacks pinned requests~=2.25.1)."""

from importlib.metadata import PackageNotFoundError, distribution, version

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

# first fixed releases: requests 2.32 (CVE-2024-35195), urllib3 2.2.2 (CVE-2024-37891)
FLOORS = {"requests": "2.32.0", "urllib3": "2.2.2"}
# a fixed release every dependency must still admit (a cap such as requests~=2.25.1 or urllib3<2 fails)
SAFE = {"requests": "2.32.3", "urllib3": "2.2.2"}


def core_closure(root="mimic-diffusers"):
    """{name: (version, [requirements])} for root and its core dependencies, recursively (no extras)."""
    try:
        distribution(root)
    except PackageNotFoundError:
        pytest.skip(f"{root} is not installed (pip install -e .)")
    seen, todo = {}, [root]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:  # a missing dependency is pip check's business, not this test's
            continue
        # a marker is evaluated with no extra selected: extras' requirements are skipped, python_version kept
        reqs = [
            r for r in map(Requirement, dist.requires or []) if r.marker is None or r.marker.evaluate({"extra": ""})
        ]
        seen[name] = (dist.version, reqs)
        todo += [r.name for r in reqs]
    return seen


def test_installed_requests_and_urllib3_are_not_vulnerable():
    closure = core_closure()
    for name, floor in FLOORS.items():
        assert name in closure, f"{name} is no longer a dependency: update FLOORS"
        assert Version(version(name)) >= Version(floor), f"installed {name} {version(name)} < {floor} (vulnerable)"


def test_no_dependency_excludes_the_fixed_releases():
    offenders = [
        f"{name} {ver} requires {req}"
        for name, (ver, reqs) in core_closure().items()
        for req in reqs
        if canonicalize_name(req.name) in SAFE
        and not req.specifier.contains(SAFE[canonicalize_name(req.name)], prereleases=True)
    ]
    assert not offenders, "dependencies that force a vulnerable release: " + "; ".join(offenders)
