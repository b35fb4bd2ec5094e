"""The LAN password: four easy words, generated, or one the owner chooses (checked here).

Pure Python; any thread.
"""

from __future__ import annotations

import secrets

from desktop.errors import UserError

MIN_PASSWORD = 8

# Short, common, distinct-sounding words: a password is four of them (about 32 bits), and
# the gate locks an address out after a few wrong tries, so guessing over the network is hopeless.
_WORD_LIST = """
    acorn actor album amber angel apple apron arrow aspen atlas badge bagel baker bamboo banjo
    barn basil beach beard bell berry bingo bison blade blanket bloom board boat bonus boots
    bottle brain branch bread brick bridge brook brush bucket bugle butter cabin cable cactus
    camel camera candle canoe canvas carpet carrot castle cedar cello chalk cherry chess chief
    cider circus clock cloud clover coast cobra cocoa comet copper coral cotton cousin crane
    crayon cricket crown cubic daisy dance delta denim desert diamond dinner doctor dolphin
    donkey dragon dream drum eagle earth easel echo elbow ember engine falcon farmer feather
    fern fiddle field finch flag flute forest fossil fountain fox garden garlic giant ginger
    glacier glove goat golden grape gravel guitar hammer harbor harvest hazel helmet heron hill
    honey horse hotel island ivory jacket jaguar jelly jewel jungle kettle kitten koala ladder
    lagoon lake lamp lantern lemon lilac lion lizard lobster magnet mango maple marble meadow
    melon meteor mirror mitten monkey moose motor mountain muffin music napkin nectar needle
    noodle ocean olive onion orange orbit otter owl paddle palace panda paper parrot pasta peach
    peanut pebble pencil pepper piano pickle pillow pilot planet plum pocket pony potato prairie
    pretzel puzzle quilt rabbit radio raft rainbow raven ribbon river robin rocket rose saddle
    sailor salmon sandal saturn school season shadow shell silver singer sketch sled snow socket
    sofa spider spoon squash stamp star stone sugar summer sunset swan table tango teapot tiger
    timber toast tomato tower tractor trumpet tulip tunnel turtle uncle valley velvet violin
    volcano wagon walnut water whale wheat willow window winter wizard wolf yogurt zebra zipper
"""
WORDS = tuple(_WORD_LIST.split())


def generate_password(words: int = 4) -> str:
    """A password that is easy to read out loud: ``maple-otter-violin-cloud``."""
    return "-".join(secrets.choice(WORDS) for _ in range(words))


def check_password(password: str) -> str:
    """``password`` stripped, or a UserError saying why it cannot be used."""
    password = (password or "").strip()
    if len(password) < MIN_PASSWORD:
        raise UserError(f"The password needs at least {MIN_PASSWORD} characters.")
    if len(password) > 128:
        raise UserError("The password can have at most 128 characters.")
    return password
