"""Catalog: product search, product page, categories, brands (no auth; cached)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from app.api.deps import ServicesDep
from app.api.responses import NOT_FOUND, STANDARD
from app.domain import catalog
from app.schemas import MAX_MINOR_UNITS, ProductOut, ProductPage, TaxonomyOut

router = APIRouter(prefix="/api", tags=["catalog"], responses=STANDARD)
JSON = "application/json"

SkuPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
SlugQuery = Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
# A page of catalog results lies within the first MAX_RESULT_WINDOW, whatever its size.
CatalogPage = Annotated[
    int,
    Query(
        ge=1,
        le=catalog.MAX_PAGE,
        description=f"results beyond the first {catalog.MAX_RESULT_WINDOW} are not served",
    ),
]
CatalogPageSize = Annotated[int, Query(ge=1, le=catalog.MAX_PAGE_SIZE)]
Keywords = Annotated[
    str | None,
    Query(
        max_length=200,
        description="keywords (word prefixes, all must match); words after the first "
        f"{catalog.MAX_QUERY_TOKENS} different ones are not used",
    ),
]


@router.get("/products", response_model=ProductPage, summary="Search the catalog")
async def search_products(
    services: ServicesDep,
    q: Keywords = None,
    category: SlugQuery = None,
    brand: SlugQuery = None,
    min_price: Annotated[int | None, Query(ge=0, le=MAX_MINOR_UNITS)] = None,
    max_price: Annotated[
        int | None, Query(ge=0, le=MAX_MINOR_UNITS, description="below min_price: no results")
    ] = None,
    sort: Literal["relevance", "price_asc", "price_desc", "newest"] = "relevance",
    page: CatalogPage = 1,
    page_size: CatalogPageSize = 20,
) -> Response:
    params = catalog.SearchParams(
        q=q,
        category=category,
        brand=brand,
        min_price=min_price,
        max_price=max_price,
        sort=sort,
        page=page,
        page_size=page_size,
    )
    return Response(await catalog.search_json(services.db, services.cache, params), media_type=JSON)


@router.get(
    "/products/{sku}",
    response_model=ProductOut,
    responses=NOT_FOUND,
    summary="One product with stock per warehouse",
)
async def get_product(sku: SkuPath, services: ServicesDep) -> Response:
    return Response(await catalog.product_json(services.db, services.cache, sku), media_type=JSON)


@router.get("/categories", response_model=TaxonomyOut)
async def categories(services: ServicesDep) -> Response:
    return Response(
        await catalog.taxonomy_json(services.db, services.cache, "categories"), media_type=JSON
    )


@router.get("/brands", response_model=TaxonomyOut)
async def brands(services: ServicesDep) -> Response:
    return Response(
        await catalog.taxonomy_json(services.db, services.cache, "brands"), media_type=JSON
    )
