"""More gettext catalogs from Debian packages, for `mtl-translate build-data gettext --roots` (needs apt and dpkg).

    python scripts/debian_catalogs.py --out debian-catalogs            # the default packages below
    mtl-translate build-data gettext --langs de,fr,es,ru --out data/gettext-debian \\
        --roots /usr/share/locale .venv/lib/python3.11/site-packages/pycountry/locales debian-catalogs/usr/share/locale

`apt-get download` fetches the .deb files (no install, no root needed for the files themselves) and `dpkg-deb -x`
unpacks them under --out; nothing on the system changes. The quickstart stays offline: this is an opt-in step.
"""

import argparse
import subprocess
import sys
from pathlib import Path

# Architecture-independent packages that carry large catalogs: desktop (GTK, GNOME, GIMP, Xfce) and command-line
# (GCC, util-linux, e2fsprogs, GnuPG, aptitude) software.
PACKAGES = ["libgtk-3-common", "libgtk2.0-common", "libglib2.0-data", "gnome-desktop3-data", "nautilus-data",
            "evince-common", "gedit-common", "gnome-control-center-data", "gnome-shell-common", "rhythmbox-data",
            "totem-common", "thunar-data", "gimp-data", "gcc-12-locales", "util-linux-locales", "e2fsprogs-l10n",
            "gnupg-l10n", "aptitude-common"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to unpack into (its usr/share/locale is the root)")
    parser.add_argument("--packages", nargs="+", default=PACKAGES)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    debs = out / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", *args.packages], cwd=debs, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"apt-get download failed ({err}); run `apt-get update` first, or drop the packages your release "
                 "lacks from --packages")
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
    catalogs = sorted(out.glob("usr/share/locale/*/LC_MESSAGES/*.mo"))
    print(f"{len(catalogs)} catalogs under {out / 'usr/share/locale'}: add it to build-data gettext --roots")


if __name__ == "__main__":
    main()
