import pytest

from connector.identity.did import (
    DidResolutionError,
    InvalidDidError,
    UnknownKeyError,
    build_did_document,
    did_document_path,
    did_web,
    did_web_to_url,
    select_key,
)
from connector.identity.keys import KeyEntry, generate_key, key_id


def entry() -> KeyEntry:
    key = generate_key()
    return KeyEntry(key=key, key_id=key_id(key))


def test_our_did_encodes_the_port() -> None:
    assert did_web("Connector.example", 8443) == "did:web:connector.example%3A8443"
    assert (
        did_web("localhost", 8080, ["tenants", "acme"]) == "did:web:localhost%3A8080:tenants:acme"
    )
    assert did_web("example.com") == "did:web:example.com"


def test_did_document_shape() -> None:
    did = "did:web:localhost%3A8080"
    keys = [entry(), entry()]
    doc = build_did_document(did, keys, services=[{"id": f"{did}#dsp", "type": "DataService"}])
    ids = [f"{did}#{k.key_id}" for k in keys]
    assert doc["id"] == did
    assert doc["@context"][0] == "https://www.w3.org/ns/did/v1"
    assert [vm["id"] for vm in doc["verificationMethod"]] == ids
    for vm, key in zip(doc["verificationMethod"], keys, strict=True):
        assert vm["type"] == "JsonWebKey2020"
        assert vm["controller"] == did
        assert vm["publicKeyJwk"]["kty"] == "EC"
        assert vm["publicKeyJwk"]["crv"] == "P-256"
        assert "d" not in vm["publicKeyJwk"]
        assert vm["publicKeyJwk"] == key.public_jwk()
    for relationship in ("authentication", "assertionMethod", "capabilityInvocation"):
        assert doc[relationship] == ids
    assert doc["service"][0]["type"] == "DataService"


@pytest.mark.parametrize(
    ("did", "url"),
    [
        ("did:web:w3c-ccg.github.io", "https://w3c-ccg.github.io/.well-known/did.json"),
        ("did:web:w3c-ccg.github.io:user:alice", "https://w3c-ccg.github.io/user/alice/did.json"),
        ("did:web:example.com%3A3000:user:alice", "https://example.com:3000/user/alice/did.json"),
        ("did:web:example.com%3a3000", "https://example.com:3000/.well-known/did.json"),
    ],
)
def test_did_web_to_url_spec_vectors(did: str, url: str) -> None:
    assert did_web_to_url(did) == url


def test_http_only_with_the_test_flag() -> None:
    did = "did:web:localhost%3A8080:consumer"
    assert did_web_to_url(did, allow_http=True) == "http://localhost:8080/consumer/did.json"
    assert did_document_path(did) == "/consumer/did.json"
    assert did_document_path("did:web:localhost%3A8080") == "/.well-known/did.json"


@pytest.mark.parametrize(
    "did",
    [
        "did:key:z6Mk",
        "DID:web:example.com",
        "did:web:",
        "did:web:example.com:",
        "did:web:example.com?x=1",
        "did:web:example.com#frag",
        "did:web:example.com:a/b",
        "did:web:example.com:..",
        "did:web:example.com:.:x",
        "did:web:example.com:a%2Fb",
        "did:web:example.com%2Fevil",
        "did:web:example.com%3A99999",
        "did:web:exa_mple.com",
        "did:web:10.0.0.1",
        "did:web:127.0.0.1%3A8080",
        "did:web:example.com::x",
    ],
)
def test_malformed_or_forbidden_dids_are_rejected(did: str) -> None:
    with pytest.raises(InvalidDidError):
        did_web_to_url(did)


def test_ip_literal_only_when_allowed() -> None:
    assert did_web_to_url("did:web:127.0.0.1%3A80", allow_http=True, allow_ip=True) == (
        "http://127.0.0.1:80/.well-known/did.json"
    )


DID = "did:web:them.example"


def doc_with(
    *,
    relationship_refs: list[str] | None = None,
    vm_ids: tuple[str, ...] = ("#k1",),
    vm_type: str = "JsonWebKey2020",
    jwk: dict[str, str] | None = None,
) -> dict[str, object]:
    key = generate_key()
    public = jwk if jwk is not None else key.as_dict(private=False)
    return {
        "id": DID,
        "verificationMethod": [
            {"id": i, "type": vm_type, "controller": DID, "publicKeyJwk": public} for i in vm_ids
        ],
        "capabilityInvocation": list(
            relationship_refs if relationship_refs is not None else vm_ids
        ),
    }


def test_select_key_absolutizes_relative_ids() -> None:
    vm_id, jwk = select_key(doc_with(), DID, f"{DID}#k1")
    assert vm_id == f"{DID}#k1"
    assert jwk["kty"] == "EC"


def test_select_key_without_kid_needs_exactly_one_key() -> None:
    assert select_key(doc_with(), DID, None)[0] == f"{DID}#k1"
    with pytest.raises(DidResolutionError, match="exactly one key"):
        select_key(doc_with(vm_ids=("#k1", "#k2")), DID, None)


def test_select_key_embedded_relationship_method() -> None:
    doc = doc_with()
    methods = doc.pop("verificationMethod")
    assert isinstance(methods, list)
    vm = methods[0]
    doc["capabilityInvocation"] = [vm]
    assert select_key(doc, DID, f"{DID}#k1")[0] == f"{DID}#k1"


def test_unknown_kid_is_a_distinct_error() -> None:
    with pytest.raises(UnknownKeyError):
        select_key(doc_with(), DID, f"{DID}#nope")


def test_methods_of_another_did_are_ignored() -> None:
    doc = doc_with(vm_ids=("did:web:other#k1",))
    with pytest.raises(UnknownKeyError):
        select_key(doc, DID, "did:web:other#k1")
    with pytest.raises(DidResolutionError, match="exactly one key"):
        select_key(doc, DID, None)


def test_capability_invocation_strict_and_relaxed() -> None:
    doc = doc_with(relationship_refs=[])
    with pytest.raises(DidResolutionError, match="capabilityInvocation"):
        select_key(doc, DID, f"{DID}#k1")
    assert select_key(doc, DID, f"{DID}#k1", require_relationship=False)[0] == f"{DID}#k1"


@pytest.mark.parametrize(
    ("doc", "kid", "message"),
    [
        ({**doc_with(), "id": "did:web:other"}, None, "does not match"),
        (doc_with(vm_type="Ed25519VerificationKey2018"), None, "JsonWebKey2020"),
        (
            doc_with(jwk={"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}),
            None,
            "private",
        ),
        (doc_with(jwk={"kty": "RSA", "n": "a", "e": "AQAB"}), None, "unsupported"),
        ({"id": DID, "verificationMethod": "x"}, None, "malformed"),
    ],
)
def test_select_key_rejects_bad_documents(
    doc: dict[str, object], kid: str | None, message: str
) -> None:
    with pytest.raises(DidResolutionError, match=message):
        select_key(doc, DID, kid)
