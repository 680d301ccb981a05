# Quickstart on the command line (docs/quickstart.md).
# A small stand-in for your photo: the sample portrait that ships with msrnet.
python -c "from importlib import resources; from PIL import Image; Image.open(resources.files('msrnet') / 'assets' / 'astronaut.png').resize((48, 48)).save('photo.png')"

# --8<-- [start:upscale]
msrnet upscale photo.png -o photo_x4.png
# --8<-- [end:upscale]

test -f photo_x4.png
