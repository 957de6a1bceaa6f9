#!/usr/bin/env python3
"""Writes the expected entrypoint.sh and Dockerfile of a prepared tree for each Spark family
(or, where that output equals the patch engine's golden output, checks the copy kept there).

The inputs are the distribution files in ../patches/<family>/input/ (the same files the
integration tests put into their generated Spark tarballs). The edits are the ones issue 3
documents, written out here by hand and independently of imgforge's patch engine:

  entrypoint.sh  export _JAVA_OPTIONS="<log4j option>[ -Dcom.amazonaws.sdk.disableCertChecking=true]"
                 just above `case "$1" in`; `--verbose` on the line after the driver branch's
                 spark-submit line, indented like it.
  Dockerfile     FROM's image replaced by the base override (when set); `COPY conf/<log4j file>
                 /opt/spark/` and `COPY conf/spark-defaults.conf /opt/spark/conf/spark-defaults.conf`
                 above `WORKDIR /opt/spark/work-dir`; with CA certificates
                 `COPY certs/ /opt/spark/certs/` and `RUN sh /opt/spark/certs/import-certs.sh
                 /opt/spark/certs` above the last USER line (else the last ENTRYPOINT/CMD,
                 else at the end).

The settings of each family are the ones tests/integration/prepare.rs configures.
Run from anywhere: python3 tests/golden/prepare/generate.py
"""
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
INPUTS = HERE.parent / "patches"

# The test generates its CA with `imgforge certs init` and copies ca.crt into the certs
# folder, so the alias is "imgforge-" + the file stem and the file is <alias>.crt.
CA = "imgforge-ca"

FAMILIES = {
    "spark-3.1": dict(log4j2=False, certs=[CA], java=11, base=None, insecure=False),
    "spark-3.3": dict(log4j2=True, certs=[CA], java=8,
                      base="registry.example.com/base/java:8-jre", insecure=False),
    "spark-3.5": dict(log4j2=True, certs=[CA], java=17,
                      base="eclipse-temurin:17-jre-jammy", insecure=True),
    "spark-4.x": dict(log4j2=True, certs=[], java=21, base=None, insecure=False),
}


def log4j_file(settings):
    return "log4j2.properties" if settings["log4j2"] else "log4j.properties"


def java_options(settings):
    if settings["log4j2"]:
        option = "-Dlog4j.configurationFile=file:///opt/spark/log4j2.properties"
    else:
        option = "-Dlog4j.configuration=file:///opt/spark/log4j.properties"
    if settings["insecure"]:
        option += " -Dcom.amazonaws.sdk.disableCertChecking=true"
    return option


def entrypoint(text, settings):
    out = []
    in_driver = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == 'case "$1" in':
            out.append(f'export _JAVA_OPTIONS="{java_options(settings)}"\n')
        out.append(line)
        if stripped == "driver)":
            in_driver = True
        elif stripped == ";;":
            in_driver = False
        elif in_driver and stripped in ('"$SPARK_HOME/bin/spark-submit"',
                                        '"${SPARK_HOME}/bin/spark-submit"'):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}--verbose\n")
    return "".join(out)


def dockerfile(text, settings):
    out = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("FROM ") and settings["base"]:
            words = line.split(" ")
            words[1] = settings["base"] + ("\n" if words[1].endswith("\n") else "")
            line = " ".join(words)
        if stripped == "WORKDIR /opt/spark/work-dir":
            out.append(f"COPY conf/{log4j_file(settings)} /opt/spark/\n")
            out.append("COPY conf/spark-defaults.conf /opt/spark/conf/spark-defaults.conf\n")
        out.append(line)
    if settings["certs"]:
        # Before the last USER line, else before the last ENTRYPOINT/CMD, else at the end.
        def last(prefixes):
            found = [i for i, line in enumerate(out) if line.strip().startswith(prefixes)]
            return found[-1] if found else None
        at = last(("USER ",))
        if at is None:
            at = last(("ENTRYPOINT ", "ENTRYPOINT[", "CMD ", "CMD["))
        if at is None:
            at = len(out)
        out[at:at] = [
            "COPY certs/ /opt/spark/certs/\n",
            "RUN sh /opt/spark/certs/import-certs.sh /opt/spark/certs\n",
        ]
    return "".join(out)


# The prepared files that come out byte-identical to the patch engine's golden output
# (../patches/<family>/expected/) are kept once, there; tests/integration/support/fixtures/
# families.rs (`prepared_as_patched`) reads them from there. For those this script checks the
# kept copy instead of writing a second one.
PREPARED_AS_PATCHED = {
    "spark-3.1": ("entrypoint.sh", "Dockerfile"),
    "spark-3.3": ("entrypoint.sh", "Dockerfile"),
    "spark-3.5": ("entrypoint.sh",),
    "spark-4.x": ("entrypoint.sh",),
}

mismatches = []
for family, settings in FAMILIES.items():
    source = INPUTS / family / "input"
    for name, edit in (("entrypoint.sh", entrypoint), ("Dockerfile", dockerfile)):
        text = edit((source / name).read_text(), settings)
        if name in PREPARED_AS_PATCHED[family]:
            kept = INPUTS / family / "expected" / name
            if kept.read_text() != text:
                mismatches.append(str(kept))
        else:
            target = HERE / family
            target.mkdir(exist_ok=True)
            (target / name).write_text(text)
if mismatches:
    raise SystemExit("no longer equal to the prepared output: " + ", ".join(mismatches))
