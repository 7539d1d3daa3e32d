"""The digits example: scikit-learn's handwritten digits as PNG files in class folders, released
in monthly batches, a small CNN behind a 95% accuracy gate (the seeds' image workflows).

- ``release``: which image arrives when (a seeded plan of the 1,797 images of
  ``sklearn.datasets.load_digits`` over 2014-07..2015-06) and the event of each monthly batch,
  with the decision a correct gate makes (``truth()``);
- ``files``: the plan written as 8-bit greyscale PNG files into ``data/images/<digit>/`` with the
  index ``data/images.csv`` (``path,label,added_at``); ``pngfile``: the PNG encoder;
- ``scenario``: the truth through modelcycle's ``reference`` seam, ``reference.factory:
  modelcycle.examples.digits.scenario:DigitsReference``;
- ``baseline``: a logistic regression on raw pixels, the benchmark a CNN champion is compared with;
- ``workspace``: ``create(root, ...)`` and ``append(ws)``, the workspace of ``modelcycle init
  --example digits``, from ``modelcycle.template.yaml``.

Nothing is downloaded: scikit-learn ships the images. This ``__init__`` imports nothing.
"""

#: What the example is, in one line (the help of `init --example` lists it).
ABOUT = ("scikit-learn's 1,797 handwritten 8x8 digits as PNG files in class folders, released monthly "
         "2014-07..2015-06, a small CNN behind a 95% accuracy gate")
#: The first cycle's window: it trains the first champion on the history 2014-07..2014-12.
FIRST_WINDOW = "2014-12"
#: The months a demo replays after the first champion, one cycle each (each has a known event:
#: ``release.truth()``).
DEMO_MONTHS = ("2015-01", "2015-06")
#: What `modelcycle demo --example digits` shows, in one line.
DEMO_STORY = "a quiet batch promoted, rotated images rolled back, broken files dropped"
