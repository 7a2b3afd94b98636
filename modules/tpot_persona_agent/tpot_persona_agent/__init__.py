"""TPOT persona agent: a Naptha agent module answering as a persona built by naptha-personas."""
