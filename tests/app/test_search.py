"""Catalog search: keywords, filters, price range, sort, pagination."""

from __future__ import annotations

from tests.app.client import ShopClient, unique_sku


async def test_keyword_category_brand_and_price_filters_combine(client: ShopClient) -> None:
    admin = await client.admin()
    word = "vortexia" + unique_sku("").lower().replace("-", "")
    made = {}
    for price, category, brand in (
        (1000, "ceramics", "kobzar"),
        (2000, "ceramics", "mriya"),
        (3000, "glass", "kobzar"),
    ):
        made[price] = await client.create_product(
            admin,
            stock={"WH-KYIV": 1},
            price=price,
            name=f"{word.title()} Jug",
            category=category,
            brand=brand,
        )

    async def skus(**params: object) -> list[str]:
        response = await client.http.get(
            "/api/products", params={"q": word, "sort": "price_asc", **params}
        )
        assert response.status_code == 200, response.text
        return [i["sku"] for i in response.json()["items"]]

    assert await skus() == [made[1000], made[2000], made[3000]]
    assert await skus(q=word[:5]) == [made[1000], made[2000], made[3000]]  # a word prefix matches
    assert await skus(category="ceramics") == [made[1000], made[2000]]
    assert await skus(brand="kobzar") == [made[1000], made[3000]]
    assert await skus(min_price=1500, max_price=2500) == [made[2000]]
    assert await skus(sort="price_desc") == [made[3000], made[2000], made[1000]]
    assert await skus(q=f"{word} jug ceramics", category="ceramics", brand="mriya") == [made[2000]]
    assert await skus(q=f"{word} nonexistentword") == []


async def test_pagination_is_stable_and_counts_the_total(client: ShopClient) -> None:
    first = (
        await client.http.get("/api/products", params={"category": "honey", "page_size": 7})
    ).json()
    second = (
        await client.http.get(
            "/api/products", params={"category": "honey", "page_size": 7, "page": 2}
        )
    ).json()
    assert first["total"] == second["total"] > 7
    assert len(first["items"]) == 7
    assert not {i["sku"] for i in first["items"]} & {i["sku"] for i in second["items"]}
    assert all(i["category"] == "honey" for i in first["items"] + second["items"])


async def test_accents_and_case_do_not_matter(client: ShopClient) -> None:
    admin = await client.admin()
    sku = await client.create_product(admin, stock={"WH-KYIV": 1}, name="Crème Brûlée Bowl Ölberg")
    for q in ("creme brulee", "CRÈME", "olberg"):
        items = (await client.http.get("/api/products", params={"q": q, "page_size": 100})).json()[
            "items"
        ]
        assert sku in [i["sku"] for i in items], q


async def test_categories_and_brands_are_listed(client: ShopClient) -> None:
    categories = (await client.http.get("/api/categories")).json()["items"]
    brands = (await client.http.get("/api/brands")).json()["items"]
    assert {"slug": "honey", "name": "Honey and Preserves"} in categories
    assert len(brands) >= 40
