//! `Resource`, `HasStatus` and `CustomResourceExt` for the kinds whose type is written by hand
//! (Freight and Project keep their fields at the top level, which `#[derive(CustomResource)]`
//! cannot express). The kind's own module provides an inherent `crd()`.

/// Implements the kube traits for a hand-written kind: `$ty` with `metadata` and `status:
/// Option<$status>` fields, `$scope` (Namespace/ClusterResourceScope), and its plural.
macro_rules! hand_written_resource {
    ($ty:ident, $status:ty, $scope:ty, $plural:literal) => {
        impl kube::core::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                stringify!($ty).into()
            }

            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::api::common::GROUP.into()
            }

            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::api::common::VERSION.into()
            }

            fn api_version(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::api::common::API_VERSION.into()
            }

            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }

            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }

            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }

        impl kube::core::object::HasStatus for $ty {
            type Status = $status;

            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }

            fn status_mut(&mut self) -> &mut Option<$status> {
                &mut self.status
            }
        }

        impl kube::CustomResourceExt for $ty {
            fn crd() -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
                // The kind's inherent `crd()` (inherent functions win over the trait's).
                $ty::crd()
            }

            fn crd_name() -> &'static str {
                concat!($plural, ".kargo.akuity.io")
            }

            fn api_resource() -> kube::core::ApiResource {
                kube::core::ApiResource::erase::<$ty>(&())
            }

            fn shortnames() -> &'static [&'static str] {
                &[]
            }
        }
    };
}

pub(crate) use hand_written_resource;
