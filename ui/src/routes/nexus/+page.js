import { fetchNexusEndpoints } from '@temporalio/ui/services/nexus-service';

export async function load({ fetch, url }) {
  return { endpoints: await fetchNexusEndpoints(url.searchParams.get('search') ?? '', fetch) };
}
