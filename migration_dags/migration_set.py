"""The set of migrations in a folder, ordered by depends_on. Needs no database.

A cycle, a dependency on a migration that is not there, or two heads (two migrations nothing
depends on, so the order between them is unknown) is a MigrationGraphError naming the files.
"""

from __future__ import annotations

from dataclasses import dataclass
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
        """Dependencies first; ties broken by name so the order is stable."""
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
        order: list[Migration] = []
        state: dict[str, str] = {}

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = path[path.index(name):] + [name]
                raise MigrationGraphError(
                    f"{self.migrations[name].file}: depends_on: cycle {' -> '.join(cycle)}"
                )
            state[name] = "visiting"
            for dep in sorted(self.migrations[name].depends_on):
                visit(dep, path + [name])
            state[name] = "done"
            order.append(self.migrations[name])

        for name in sorted(self.migrations):
            visit(name, [])
        return order

    def heads(self) -> set[str]:
        depended = {d for m in self.migrations.values() for d in m.depends_on}
        return set(self.migrations) - depended
