// Package exportd holds the domain types of the export service: what an
// export asks for, the records it carries, and the documents it produces.
// Every other package (postgres, format/..., workflows, activities, api)
// depends on these types and on nothing else in the project's root.
package exportd
