"""Two-word run names (``brave-otter``), as the reference server gives unnamed runs."""

from __future__ import annotations

import random

ADJECTIVES = (
    "amber agile airy ancient arctic ashen autumn bold brave breezy bright brisk calm "
    "candid cheerful clever cobalt cosmic crimson curious daring dapper dazzling deep "
    "eager earnest electric elegant emerald fancy fearless fiery gentle gilded glowing "
    "golden graceful grand happy hardy hazel honest humble icy indigo jade jolly keen "
    "kind lively lucky lunar mellow merry mighty misty modest nimble noble ochre olive "
    "opal patient peppy placid plucky polar proud quick quiet radiant rapid rosy ruby "
    "rustic sage scarlet serene silent silver sleek smart snowy solar spry stellar "
    "steady stoic sunny swift tidy tranquil true upbeat valiant vivid warm wise witty "
    "zesty"
).split()

ANIMALS = (
    "albatross alpaca anteater armadillo badger beaver bison bobcat buffalo camel "
    "capybara caribou cheetah chipmunk cicada condor cougar coyote crane cricket "
    "dingo dodo dolphin dove eagle echidna egret elk falcon ferret finch flamingo fox "
    "gazelle gecko gibbon giraffe gopher grouse hare hawk hedgehog heron hippo ibex "
    "ibis iguana impala jackal jaguar kakapo kangaroo kestrel kingfisher koala lemur "
    "leopard llama lobster lynx macaw magpie manatee marmot marten meerkat mink moose "
    "narwhal newt ocelot octopus okapi orca osprey otter owl panda pangolin parrot "
    "pelican penguin puffin quail quokka rabbit raccoon raven salmon seal shrew skunk "
    "sloth sparrow squid starling stork swan tapir tiger toucan turtle vulture walrus "
    "weasel whale wolf wombat yak zebra"
).split()


def run_name(rng: random.Random | None = None) -> str:
    """A random ``adjective-animal`` name."""
    pick = (rng or random).choice
    return f"{pick(ADJECTIVES)}-{pick(ANIMALS)}"
