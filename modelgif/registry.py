"""The names and kinds of the functional-distance methods, without their code (no numpy or torch
import): what the settings and the stage wiring need to know of a method.

A *field method* is a mean over images of per-image distances between stored fields or maps;
a *set method* compares the encoders' outputs over the whole reference set (:mod:`modelgif.methods`).
"""

#: Methods whose distance is a mean over images of per-image field distances.
FIELD_METHODS = ("modelgif", "ig", "saliency", "gradxinput")
#: Methods on the encoders' output features over the whole reference set.
SET_METHODS = ("rsa", "cka", "dds")
METHODS = FIELD_METHODS + SET_METHODS
