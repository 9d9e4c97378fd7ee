"""The set of migrations in a folder, ordered by depends_on. Needs no database.

A cycle, a dependency on a migration that is not there, or two heads (two migrations nothing
depends on, so the order between them is unknown) is a MigrationGraphError naming the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from .errors import MigrationGraphError, UnknownMigrationError
from .spec import Migration, load_migration


@dataclass
class MigrationSet:
    folder: Path
    migrations: dict[str, Migration]

    @classmethod
    def load(cls, folder: Path) -> "MigrationSet":
        folder = Path(folder)
        if not folder.is_dir():
            raise MigrationGraphError(f"{folder}: migrations folder does not exist")
        migrations: dict[str, Migration] = {}
        for path in sorted(folder.glob("*.y*ml")):
            if path.suffix not in (".yaml", ".yml"):
                continue
            migration = load_migration(path)
            if migration.name in migrations:
                raise MigrationGraphError(
                    f"{path}: name: {migration.name!r} is also used by {migrations[migration.name].file}"
                )
            migrations[migration.name] = migration
        found = cls(folder, migrations)
        found.ordered()
        return found

    def get(self, name: str) -> Migration:
        if name not in self.migrations:
            raise UnknownMigrationError(name, list(self.migrations))
        return self.migrations[name]

    def ordered(self) -> list[Migration]:
        """Dependencies first; among the migrations ready at once, the first by name, so the
        order is stable."""
        for m in self.migrations.values():
            for dep in m.depends_on:
                if dep not in self.migrations:
                    raise MigrationGraphError(
                        f"{m.file}: depends_on: no migration named {dep!r} in {self.folder}"
                    )
        heads = sorted(self.heads())
        if len(heads) > 1:
            raise MigrationGraphError(
                f"{self.folder}: depends_on: two or more heads ({', '.join(heads)}); make one depend "
                "on the other so their order is defined"
            )
        sorter = TopologicalSorter({name: m.depends_on for name, m in self.migrations.items()})
        try:
            sorter.prepare()
        except CycleError as exc:
            raise self._cycle_error(exc.args[1]) from None
        order: list[Migration] = []
        ready: list[str] = []
        while sorter.is_active():
            # one at a time, so a migration freed by the one just placed competes by name too
            ready = sorted(ready + list(sorter.get_ready()))
            name = ready.pop(0)
            order.append(self.migrations[name])
            sorter.done(name)
        return order

    def _cycle_error(self, cycle: list[str]) -> MigrationGraphError:
        """graphlib lists a cycle dependency first and repeats its first name last; we say it as
        `a -> b -> a` ("a depends on b"), starting at the first name so the message is stable."""
        path = list(reversed(cycle))[:-1]
        first = path.index(min(path))
        path = path[first:] + path[:first] + [path[first]]
        return MigrationGraphError(
            f"{self.migrations[path[0]].file}: depends_on: cycle {' -> '.join(path)}"
        )

    def heads(self) -> set[str]:
        depended = {d for m in self.migrations.values() for d in m.depends_on}
        return set(self.migrations) - depended
