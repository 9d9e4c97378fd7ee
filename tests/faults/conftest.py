"""The fault suite shares the operation tests' database, emptied before each test
(operations/conftest.py): a case is a few steps, so a fresh database each would cost more."""

from operations.conftest import _operations_database, database_url  # noqa: F401
