"""The slug ID sanitizer passes the conformance kit, like the built-in strict one."""

from __future__ import annotations

import pytest

from orchestrator.testing.conformance import IdSanitizerConformance


class TestSlugSanitizer(IdSanitizerConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "slug"
