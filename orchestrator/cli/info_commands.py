"""``plugins`` and ``config``: what is installed and active, and where each setting came from."""

from __future__ import annotations

from typing import Any

from orchestrator.cli.common import Common, load_kernel, print_json


def plugins(*, common: Common | None = None) -> int:
    """List each slot's installed implementations (the active one marked) and the observers."""
    from orchestrator.contracts import PLUGIN_API_VERSION, SLOT_GROUPS
    from orchestrator.slots import list_installed

    common = common or Common()
    kernel = load_kernel(common, skip_unloadable=True)
    chosen = kernel.config.settings.plugins
    slots: dict[str, Any] = {}
    for slot, group in SLOT_GROUPS.items():
        active = getattr(chosen, slot)
        implementations = [
            {
                "name": info.name,
                "target": info.target,
                "distribution": info.distribution,
                "version": info.version,
                "active": info.name == active,
                "error": info.error,
            }
            for info in list_installed(slot)
        ]
        slots[slot] = {
            "group": group,
            "active": active,
            "active_installed": any(i["name"] == active for i in implementations),
            "implementations": implementations,
        }
    observers = [
        {
            "name": o.name,
            "distribution": o.distribution,
            "version": o.version,
            "status": o.status,
            "error": o.error,
        }
        for o in kernel.observers.infos
    ]
    document = {"plugin_api": PLUGIN_API_VERSION, "slots": slots, "observers": observers}
    if common.format == "json":
        print_json(document)
        return 0
    for slot, data in slots.items():
        print(f"{slot} ({data['group']}):")
        if not data["active_installed"]:
            print(f"  ! active {data['active']!r} is not installed")
        for impl in data["implementations"]:
            mark = "*" if impl["active"] else " "
            where = f"{impl['distribution'] or '?'} {impl['version'] or ''}".strip()
            line = f"  {mark} {impl['name']:<12} {where}"
            if impl["error"]:
                line += f"  [cannot load: {impl['error']}]"
            print(line)
    print("observers (codex_orchestrator.plugins):")
    if not observers:
        print("  (none installed)")
    for obs in observers:
        where = f"{obs['distribution'] or '?'} {obs['version'] or ''}".strip()
        line = f"  {obs['name']:<14} {where}  {obs['status']}"
        if obs["error"]:
            line += f": {obs['error']}"
        print(line)
    return 0


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        rows: list[tuple[str, Any]] = []
        for key, item in value.items():
            rows.extend(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix, value)]


def _source(kernel: Any, key: str) -> str:
    """The layer that set ``key``; an observer's own default is labelled as that observer's."""
    source: str = kernel.config.value_origin(key)
    parts = key.split(".")
    if parts[0] == "observers" and len(parts) > 2 and key not in kernel.config.provenance:
        return f"default of observer {parts[1]!r}"
    return source


def config(*, common: Common | None = None) -> int:
    """Show the effective configuration and, for each value, the layer it came from."""
    import json

    from orchestrator.redaction import redact_document

    common = common or Common()
    kernel = load_kernel(common, skip_unloadable=True, runs=True)
    effective: dict[str, Any] = kernel.effective_config()
    from orchestrator.contracts import SLOT_NAMES

    for slot in SLOT_NAMES:
        try:
            effective[slot] = kernel.slot(slot).options.model_dump(mode="json")
        except Exception:  # an uninstalled plugin: show the raw table
            continue
    for name, options in kernel.observers.options.items():
        effective.setdefault("observers", {})[name] = options.model_dump(mode="json")
    effective = redact_document(effective)  # secret-named keys as ***, target URLs reduced
    rows = [
        {"key": key, "value": value, "source": _source(kernel, key)}
        for key, value in _flatten(effective)
    ]
    if common.format == "json":
        print_json(
            {
                "root": str(kernel.root),
                "runs_dir": str(kernel.config.runs_dir),
                "out_dir": str(kernel.config.out_dir),
                "layers": [
                    {"name": layer.name, "origin": layer.origin} for layer in kernel.config.layers
                ],
                "config": effective,
                "values": rows,
            }
        )
        return 0
    print(f"# root: {kernel.root}")
    print(
        "# layers: " + ", ".join(f"{layer.name} ({layer.origin})" for layer in kernel.config.layers)
    )
    width = max((len(r["key"]) for r in rows), default=10)
    for row in rows:
        shown = json.dumps(row["value"], ensure_ascii=False)
        print(f"{row['key']:<{width}} = {shown}  # {row['source']}")
    return 0
