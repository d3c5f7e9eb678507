"""The stack's files and ports (mbusportal/stack.py), without starting anything."""

import pytest

from mbusportal.stack import DEPLOY, PLACEHOLDER, STANDARD_PORTS, Stack, StackError, render


def test_it_fills_every_placeholder_or_refuses():
    assert render("listen {{PORT}}; # {{PORT}}", {"PORT": "17001"}) == "listen 17001; # 17001"
    with pytest.raises(StackError, match="no value for HOST, PORT"):
        render("{{HOST}}:{{PORT}}", {})


@pytest.mark.parametrize("template", ["nginx/mbusportal.conf", "pgbouncer/pgbouncer.ini", "redis/redis.conf"])
def test_the_shipped_templates_name_only_placeholders_they_use_outside_comments(template):
    for line in (DEPLOY / template).read_text().splitlines():
        if line.lstrip().startswith(("#", ";")):
            assert not PLACEHOLDER.search(line), line  # a rendered comment line could span several lines


def test_each_checkout_gets_ports_of_its_own_and_never_a_standard_one(tmp_path):
    stacks = [Stack(tmp_path / name, database_url="postgres://u@127.0.0.1:1/x", daphnes=6) for name in "abcdefgh"]
    blocks = {stack.base_port for stack in stacks}
    assert len(blocks) > 1
    for stack in stacks:
        assert stack.base_port >= 17000 and stack.daphne_port(5) < 18000
        ports = {stack.https_port, stack.http_port, stack.pgbouncer_port, stack.redis_port}
        ports |= {stack.daphne_port(index) for index in range(6)}
        assert len(ports) == 10 and not ports & STANDARD_PORTS
    same = Stack(tmp_path / "a", database_url="postgres://u@127.0.0.1:1/x")
    assert same.base_port == stacks[0].base_port
