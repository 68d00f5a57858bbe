"""Router service: decides who earned a won deal and credits it."""
