"""XLIFF's inline elements (`<g id="1">`, `<x/>`, `<ph>`, `<pc>`) as text, and back.

translate-toolkit's `unit.source` drops them (`Click <g id="1">here</g>` reads "Click here"), so a target set from
it would lose the markup. A source with inline elements is read as its XML content instead: the markup rules
(markup.py) then keep every tag verbatim, and the translation is parsed back into the target element.
"""

from lxml import etree


def inner_xml(element: etree._Element) -> str:
    """`element`'s content as XML text, its children without the namespace declaration every one of them repeats."""
    text = etree.tostring(element, encoding="unicode", with_tail=False)
    start, end = text.index(">") + 1, text.rindex("</")
    return text[start:end].replace(f' xmlns="{etree.QName(element).namespace}"', "")


def parse_content(text: str, like: etree._Element) -> etree._Element | None:
    """`text` parsed as the content of an element in `like`'s namespace; None when it is not well-formed."""
    namespace = etree.QName(like).namespace
    try:
        return etree.fromstring(f'<t xmlns="{namespace}">{text}</t>' if namespace else f"<t>{text}</t>")
    except etree.XMLSyntaxError:
        return None


def replace_content(element: etree._Element, content: etree._Element) -> None:
    """`element` gets `content`'s text and children (`parse_content`), in place of its own."""
    element.text = content.text
    for child in list(element):
        element.remove(child)
    element.extend(list(content))
